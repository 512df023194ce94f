"""The master's event bus: in-process subscribers, and (``c['mq']`` amqp) RabbitMQ through an
outbox (docs/operations.md, "Events and the broker")."""
