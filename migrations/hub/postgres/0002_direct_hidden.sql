-- Direct rooms are never left, only hidden (docs/PROTOCOL.md, `POST /v1/rooms/{id}/leave`): the
-- leaver stays a member with `hidden` set, so the room is missing from their room list until
-- they open it again (`POST /v1/direct/{username}`) or a new message arrives in it. The same
-- change as migrations/hub/sqlite/0002_direct_hidden.sql.
ALTER TABLE members ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT FALSE;
-- Appends clear `hidden` for the room's members: this index finds the few hidden rows at once.
CREATE INDEX members_hidden ON members (room_id) WHERE hidden;

-- Before this rule a leaver's row was deleted: bring such leavers back, hidden. A direct room's
-- key is "<smaller user id>:<larger user id>", its creator (`created_by`) is the user with the
-- smaller id, and its name is the two usernames, sorted, joined with a comma (usernames hold no
-- comma, ids no colon).
INSERT INTO members (room_id, user_id, username, joined_ts, read_seq, hidden)
SELECT id, split_part(direct_key, ':', 1), created_by, created_ts, 0, TRUE
FROM rooms WHERE kind = 'direct'
UNION ALL
SELECT id, split_part(direct_key, ':', 2),
       CASE WHEN split_part(name, ',', 1) = created_by
            THEN split_part(name, ',', 2) ELSE split_part(name, ',', 1) END,
       created_ts, 0, TRUE
FROM rooms WHERE kind = 'direct'
ON CONFLICT (room_id, user_id) DO NOTHING;
