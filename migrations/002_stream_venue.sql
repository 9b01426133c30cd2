-- Streams are keyed by venue plus symbol: two feeds carrying the same symbol (spot and futures
-- BTCUSDT, push ingest beside a live feed) keep apart. Rows written before keep venue '': the
-- first stream of their symbol to ask for a checkpoint takes them over (claimLegacy in
-- src/store/checkpoints.ts), so an upgraded service resumes where it stopped.
ALTER TABLE checkpoints ADD COLUMN venue TEXT NOT NULL DEFAULT '';
DROP INDEX checkpoints_symbol_id;
CREATE INDEX checkpoints_stream_id ON checkpoints (venue, symbol, id DESC);

ALTER TABLE predictions ADD COLUMN venue TEXT NOT NULL DEFAULT '';
DROP INDEX predictions_symbol_ts;
CREATE INDEX predictions_stream_ts ON predictions (venue, symbol, ts);
