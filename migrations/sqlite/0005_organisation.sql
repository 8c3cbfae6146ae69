-- The organisation (SQLite): departments (a tree with leaders), roles and skills.
CREATE TABLE departments (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL
) STRICT;
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL
) STRICT;
CREATE TABLE skills (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL
) STRICT;
