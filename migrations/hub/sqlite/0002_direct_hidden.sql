-- Direct rooms are never left, only hidden (docs/PROTOCOL.md, `POST /v1/rooms/{id}/leave`): the
-- leaver stays a member with `hidden` set, so the room is missing from their room list until
-- they open it again (`POST /v1/direct/{username}`) or a new message arrives in it.
ALTER TABLE members ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
-- Appends clear `hidden` for the room's members: this index finds the few hidden rows at once.
CREATE INDEX members_hidden ON members (room_id) WHERE hidden = 1;

-- Before this rule a leaver's row was deleted: bring such leavers back, hidden. A direct room's
-- key is "<smaller user id>:<larger user id>", its creator (`created_by`) is the user with the
-- smaller id, and its name is the two usernames, sorted, joined with a comma (usernames hold no
-- comma, ids no colon).
INSERT INTO members (room_id, user_id, username, joined_ts, read_seq, hidden)
SELECT id, substr(direct_key, 1, instr(direct_key, ':') - 1), created_by, created_ts, 0, 1
FROM rooms WHERE kind = 'direct'
UNION ALL
SELECT id, substr(direct_key, instr(direct_key, ':') + 1),
       CASE WHEN substr(name, 1, instr(name, ',') - 1) = created_by
            THEN substr(name, instr(name, ',') + 1)
            ELSE substr(name, 1, instr(name, ',') - 1) END,
       created_ts, 0, 1
FROM rooms WHERE kind = 'direct'
ON CONFLICT (room_id, user_id) DO NOTHING;
