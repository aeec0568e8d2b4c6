-- Messages keep no foreign key to rooms. The only writer of `messages` is the batch writer
-- (hub/src/store/postgres/batch.rs), which locks each room's row, advances its `last_seq` and
-- inserts only the messages of rooms it advanced, in the same transaction; rooms are never
-- deleted. So the key's check could never fail, yet it ran a trigger query per inserted row:
-- about a fifth of the database's CPU per stored message (`switchboard-bench persist`,
-- docs/BENCHMARKS.md). The SQLite schema keeps its key: there the check is an in-process lookup.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_room_id_fkey;
