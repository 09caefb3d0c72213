-- Run once by the write-pg container on its first start: the outbox table syncline-producer reads.
CREATE TABLE IF NOT EXISTS public.outbox (
  id uuid PRIMARY KEY,
  aggregate_type text NOT NULL,
  aggregate_id text NOT NULL,
  event_type text NOT NULL,
  payload jsonb,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  headers jsonb
);
