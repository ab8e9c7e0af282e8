-- The token path looks users up by username: with `users_by_username`
-- alone that is two B-tree descents (the index, then the table by its
-- primary key). This index carries every column the lookup reads, so the
-- lookup is one descent; with 1M users each descent is a page-cache miss.
-- `users_by_username` stays: it is the one that enforces uniqueness.
CREATE INDEX users_by_username_covering
    ON users (tenant_id, username_folded, id, username, email, enabled, groups);
