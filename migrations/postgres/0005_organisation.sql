-- The organisation (PostgreSQL): departments (a tree with leaders), roles and skills.
CREATE TABLE departments (
    name        TEXT PRIMARY KEY,
    definition  JSONB NOT NULL
);
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    definition  JSONB NOT NULL
);
CREATE TABLE skills (
    name        TEXT PRIMARY KEY,
    definition  JSONB NOT NULL
);
