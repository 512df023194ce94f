"""The broker ends of the outbox publisher and of the consumer: channels to RabbitMQ through
pika's Twisted adapter (``pika.adapters.twisted_connection``), on the master's reactor.

Exchanges are declared as durable topic exchanges.  The publisher's channel is in
publisher-confirms mode (``publish`` fires once the broker took the message), its messages
persistent (``delivery_mode`` 2) with their ``eventId`` as ``message_id`` and the origin master
in their headers.  The consumer's channel reads one durable queue per master (``subscribe``),
acknowledging each message once it was handed on.
"""

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer, endpoints, ssl
from twisted.internet.interfaces import IReactorTime

CONNECT_TIMEOUT_S = 10.0
CONTENT_TYPE = "application/json"
PERSISTENT = pika.DeliveryMode.Persistent


class _Connected:
    """A pika channel and the connection it lives on."""

    def __init__(self, connection: TwistedProtocolConnection, channel) -> None:
        self.connection = connection
        self.channel = channel

    def declare(self, exchange: str) -> defer.Deferred:
        return self.channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
        elif self.connection.transport is not None:
            self.connection.transport.abortConnection()


class AMQPChannel(_Connected):
    """One pika channel with publisher confirms, and the connection it lives on."""

    def publish(self, exchange: str, routing_key: str, body: bytes, message_id: str | None,
                headers: dict | None = None) -> defer.Deferred:
        properties = pika.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=PERSISTENT,
                                          message_id=message_id, headers=headers)
        return self.channel.basic_publish(exchange, routing_key, body, properties)


class AMQPConsumerChannel(_Connected):
    """One pika channel that consumes a queue (master/mq/consumer.py's ``ConsumerChannel``)."""

    def __init__(self, connection: TwistedProtocolConnection, channel, reactor: IReactorTime) -> None:
        super().__init__(connection, channel)
        self.reactor = reactor

    def _answer(self, d: defer.Deferred) -> defer.Deferred:
        return d.addTimeout(CONNECT_TIMEOUT_S, self.reactor)

    async def subscribe(self, queue: str, exchanges: list[str], expires_s: float, prefetch: int):
        """Declare ``exchanges`` and the durable ``queue`` (deleted by the broker once unused
        for ``expires_s``), bind it to every key of each exchange, and consume it: the
        ``ClosableDeferredQueue`` of pika's ``ReceivedMessage``s (its ``get`` fails once the
        channel is gone)."""
        for exchange in exchanges:
            await self._answer(self.declare(exchange))
        await self._answer(self.channel.queue_declare(queue=queue, durable=True,
                                                      arguments={"x-expires": int(expires_s * 1000)}))
        for exchange in exchanges:
            await self._answer(self.channel.queue_bind(queue=queue, exchange=exchange, routing_key="#"))
        await self._answer(self.channel.basic_qos(prefetch_count=prefetch))
        received, _tag = await self._answer(self.channel.basic_consume(queue=queue, auto_ack=False))
        return received

    def ack(self, delivery_tag: int) -> None:
        self.channel.basic_ack(delivery_tag=delivery_tag)


async def _connect(reactor: IReactorTime, url: str) -> tuple[TwistedProtocolConnection, object]:
    """Connect to the broker at ``url`` (amqp:// or amqps://) and open a channel, each step
    within ``CONNECT_TIMEOUT_S``; the connection and pika's ``TwistedChannel``."""
    parameters = pika.URLParameters(url)
    if parameters.ssl_options is not None:
        tls = ssl.optionsForClientTLS(parameters.host)
        endpoint = endpoints.wrapClientTLS(tls, endpoints.HostnameEndpoint(
            reactor, parameters.host, parameters.port, timeout=CONNECT_TIMEOUT_S))
    else:
        endpoint = endpoints.HostnameEndpoint(reactor, parameters.host, parameters.port,
                                              timeout=CONNECT_TIMEOUT_S)
    connection = TwistedProtocolConnection(parameters, custom_reactor=reactor)
    await endpoints.connectProtocol(endpoint, connection)
    try:
        await connection.ready.addTimeout(CONNECT_TIMEOUT_S, reactor)
        channel = await connection.channel().addTimeout(CONNECT_TIMEOUT_S, reactor)
    except BaseException:
        _abort(connection)
        raise
    return connection, channel


def _abort(connection: TwistedProtocolConnection) -> None:
    if connection.transport is not None:
        connection.transport.abortConnection()


async def open_channel(reactor: IReactorTime, url: str) -> AMQPChannel:
    """A channel to the broker at ``url`` with publisher confirms turned on."""
    connection, channel = await _connect(reactor, url)
    try:
        await channel.confirm_delivery().addTimeout(CONNECT_TIMEOUT_S, reactor)
    except BaseException:
        _abort(connection)
        raise
    return AMQPChannel(connection, channel)


async def open_consumer_channel(reactor: IReactorTime, url: str) -> AMQPConsumerChannel:
    """A channel to the broker at ``url`` for consuming."""
    connection, channel = await _connect(reactor, url)
    return AMQPConsumerChannel(connection, channel, reactor)
