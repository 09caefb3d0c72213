-- The chat demo's write model (write PostgreSQL): domain tables, the Syncline outbox and one SQL
-- function per command. Each command is one transaction that changes the domain tables and records
-- its domain event in the same commit, so the event exists exactly when the change does.
--
-- Placeholders, replaced by `syncline-chat-workload --setup` (defaults in brackets):
--   {{schema}}          the domain schema                       [chat]
--   {{outbox}}          the outbox table (producer.outbox_table) [public.outbox]
--   {{message_prefix}}  producer.message_prefix                  [syncline]
-- To apply it by hand: sed -e 's/{{schema}}/chat/g' -e 's/{{outbox}}/public.outbox/g' \
--   -e 's/{{message_prefix}}/syncline/g' schema.sql | psql "$SYNCLINE_WRITE_PG_DSN"
-- Everything is idempotent (IF NOT EXISTS / OR REPLACE): applying it twice changes nothing.
--
-- Events: aggregate_type `user` (key: user id) for UserRegistered; aggregate_type `conversation`
-- (key: conversation id) for everything that happens in a conversation, so that a conversation's
-- events reach the projectors in commit order. MessageEdited and MessageDeleted go through
-- pg_logical_emit_message (no table), the others through the outbox: both paths run.
-- Deletion is soft (deleted_at): the message row stays, so its author still "sent" it.

CREATE SCHEMA IF NOT EXISTS {{schema}};

CREATE TABLE IF NOT EXISTS {{outbox}} (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  event_type     text NOT NULL,
  payload        jsonb NOT NULL,
  occurred_at    timestamptz NOT NULL DEFAULT now(),
  headers        jsonb);

CREATE TABLE IF NOT EXISTS {{schema}}.users (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  handle        text NOT NULL UNIQUE,
  display_name  text NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now());

CREATE TABLE IF NOT EXISTS {{schema}}.conversations (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title      text NOT NULL,
  created_by bigint NOT NULL REFERENCES {{schema}}.users (id),
  created_at timestamptz NOT NULL DEFAULT now());

CREATE TABLE IF NOT EXISTS {{schema}}.participants (
  conversation_id bigint NOT NULL REFERENCES {{schema}}.conversations (id),
  user_id         bigint NOT NULL REFERENCES {{schema}}.users (id),
  joined_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, user_id));
CREATE INDEX IF NOT EXISTS participants_user ON {{schema}}.participants (user_id);

CREATE TABLE IF NOT EXISTS {{schema}}.messages (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  conversation_id bigint NOT NULL REFERENCES {{schema}}.conversations (id),
  author_id       bigint NOT NULL REFERENCES {{schema}}.users (id),
  body            text NOT NULL,
  sent_at         timestamptz NOT NULL DEFAULT now(),
  edited_at       timestamptz,
  deleted_at      timestamptz);  -- soft delete: NULL while the message is visible
CREATE INDEX IF NOT EXISTS messages_conversation ON {{schema}}.messages (conversation_id, sent_at);
CREATE INDEX IF NOT EXISTS messages_author ON {{schema}}.messages (author_id);

-- Records a domain event in the outbox, in the caller's transaction.
CREATE OR REPLACE FUNCTION {{schema}}.record_event(p_aggregate_type text, p_aggregate_id text,
                                                   p_event_type text, p_payload jsonb)
RETURNS void LANGUAGE sql AS $$
  -- id and occurred_at are given, not left to defaults: an outbox that already existed may have none.
  INSERT INTO {{outbox}} (id, aggregate_type, aggregate_id, event_type, payload, occurred_at)
  VALUES (gen_random_uuid(), p_aggregate_type, p_aggregate_id, p_event_type, p_payload, now());
$$;

-- Records a domain event as a transactional logical message: same fields as an outbox row, no
-- table (it lives only in the WAL), decoded by the producer only if the transaction commits.
CREATE OR REPLACE FUNCTION {{schema}}.emit_event(p_aggregate_type text, p_aggregate_id text,
                                                 p_event_type text, p_payload jsonb)
RETURNS void LANGUAGE sql AS $$
  SELECT pg_logical_emit_message(true, '{{message_prefix}}', jsonb_build_object(
    'id', gen_random_uuid(), 'aggregate_type', p_aggregate_type, 'aggregate_id', p_aggregate_id,
    'event_type', p_event_type, 'occurred_at', now(), 'payload', p_payload)::text);
  SELECT;
$$;

-- UserRegistered (outbox). Returns the new user's id.
CREATE OR REPLACE FUNCTION {{schema}}.register_user(p_handle text, p_display_name text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_user {{schema}}.users;
BEGIN
  INSERT INTO {{schema}}.users (handle, display_name) VALUES (p_handle, p_display_name) RETURNING * INTO v_user;
  PERFORM {{schema}}.record_event('user', v_user.id::text, 'UserRegistered', jsonb_build_object(
    'user_id', v_user.id, 'handle', v_user.handle, 'display_name', v_user.display_name,
    'registered_at', v_user.registered_at));
  RETURN v_user.id;
END $$;

-- ConversationStarted (outbox): the creator is its first participant. Returns the conversation id.
CREATE OR REPLACE FUNCTION {{schema}}.start_conversation(p_creator bigint, p_title text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_conversation {{schema}}.conversations;
BEGIN
  INSERT INTO {{schema}}.conversations (title, created_by) VALUES (p_title, p_creator) RETURNING * INTO v_conversation;
  INSERT INTO {{schema}}.participants (conversation_id, user_id, joined_at)
  VALUES (v_conversation.id, p_creator, v_conversation.created_at);
  PERFORM {{schema}}.record_event('conversation', v_conversation.id::text, 'ConversationStarted', jsonb_build_object(
    'conversation_id', v_conversation.id, 'title', v_conversation.title, 'created_by', p_creator,
    'joined_at', v_conversation.created_at));
  RETURN v_conversation.id;
END $$;

-- ParticipantJoined (outbox). Returns false (and records nothing) when the user already is a participant.
CREATE OR REPLACE FUNCTION {{schema}}.join_conversation(p_conversation bigint, p_user bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_joined_at timestamptz;
BEGIN
  INSERT INTO {{schema}}.participants (conversation_id, user_id) VALUES (p_conversation, p_user)
  ON CONFLICT DO NOTHING RETURNING joined_at INTO v_joined_at;
  IF v_joined_at IS NULL THEN
    RETURN false;
  END IF;
  PERFORM {{schema}}.record_event('conversation', p_conversation::text, 'ParticipantJoined', jsonb_build_object(
    'conversation_id', p_conversation, 'user_id', p_user, 'joined_at', v_joined_at));
  RETURN true;
END $$;

-- MessageSent (outbox). Only a participant may write. Returns the message id.
CREATE OR REPLACE FUNCTION {{schema}}.send_message(p_conversation bigint, p_author bigint, p_body text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_message {{schema}}.messages;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM {{schema}}.participants WHERE conversation_id = p_conversation AND user_id = p_author) THEN
    RAISE EXCEPTION 'user % is not a participant of conversation %', p_author, p_conversation
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO {{schema}}.messages (conversation_id, author_id, body) VALUES (p_conversation, p_author, p_body)
  RETURNING * INTO v_message;
  PERFORM {{schema}}.record_event('conversation', p_conversation::text, 'MessageSent', jsonb_build_object(
    'message_id', v_message.id, 'conversation_id', p_conversation, 'author_id', p_author,
    'body', v_message.body, 'sent_at', v_message.sent_at));
  RETURN v_message.id;
END $$;

-- MessageEdited (logical message). Only the author edits a visible message; returns false otherwise.
CREATE OR REPLACE FUNCTION {{schema}}.edit_message(p_message bigint, p_editor bigint, p_body text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_message {{schema}}.messages;
BEGIN
  UPDATE {{schema}}.messages SET body = p_body, edited_at = now()
  WHERE id = p_message AND author_id = p_editor AND deleted_at IS NULL RETURNING * INTO v_message;
  IF v_message.id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM {{schema}}.emit_event('conversation', v_message.conversation_id::text, 'MessageEdited', jsonb_build_object(
    'message_id', v_message.id, 'conversation_id', v_message.conversation_id, 'author_id', v_message.author_id,
    'body', v_message.body, 'edited_at', v_message.edited_at));
  RETURN true;
END $$;

-- MessageDeleted (logical message). Only the author deletes a visible message; returns false otherwise.
CREATE OR REPLACE FUNCTION {{schema}}.delete_message(p_message bigint, p_user bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_message {{schema}}.messages;
BEGIN
  UPDATE {{schema}}.messages SET deleted_at = now()
  WHERE id = p_message AND author_id = p_user AND deleted_at IS NULL RETURNING * INTO v_message;
  IF v_message.id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM {{schema}}.emit_event('conversation', v_message.conversation_id::text, 'MessageDeleted', jsonb_build_object(
    'message_id', v_message.id, 'conversation_id', v_message.conversation_id, 'author_id', v_message.author_id,
    'deleted_at', v_message.deleted_at));
  RETURN true;
END $$;
