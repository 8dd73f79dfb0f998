-- Lookups the operations console makes: transactions by a card's last four digits, and the
-- events (hence webhook deliveries) a transaction or card caused.
CREATE INDEX cards_last4 ON cards (last4);
CREATE INDEX events_object ON events (object_id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
