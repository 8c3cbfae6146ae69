-- Menu layouts (SQLite): the analyst's arrangement of the menu (sections, their order, the
-- entries in each), stored as one definition per name ('main'). Each caller's menu is this
-- layout filtered by their grants, with whatever it does not place appended in the
-- generated sections, so a new service or DataItem still shows up.
CREATE TABLE menu_layouts (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
