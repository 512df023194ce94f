"""The broker end of the outbox publisher: a confirmed channel to RabbitMQ through pika's
Twisted adapter (``pika.adapters.twisted_connection``), on the master's reactor.

Exchanges are declared as durable topic exchanges, messages published persistent
(``delivery_mode`` 2) with their ``eventId`` as ``message_id``, and the channel is in
publisher-confirms mode: ``publish`` fires once the broker took the message.
"""

import pika
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer, endpoints, ssl
from twisted.internet.interfaces import IReactorTime

CONNECT_TIMEOUT_S = 10.0
CONTENT_TYPE = "application/json"
PERSISTENT = pika.DeliveryMode.Persistent


class AMQPChannel:
    """One pika channel with publisher confirms, and the connection it lives on."""

    def __init__(self, connection: TwistedProtocolConnection, channel) -> None:
        self.connection = connection
        self.channel = channel

    def declare(self, exchange: str) -> defer.Deferred:
        return self.channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)

    def publish(self, exchange: str, routing_key: str, body: bytes, message_id: str | None) -> defer.Deferred:
        properties = pika.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=PERSISTENT,
                                          message_id=message_id)
        return self.channel.basic_publish(exchange, routing_key, body, properties)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
        elif self.connection.transport is not None:
            self.connection.transport.abortConnection()


async def open_channel(reactor: IReactorTime, url: str) -> AMQPChannel:
    """Connect to the broker at ``url`` (amqp:// or amqps://), open a channel and turn on
    publisher confirms; every step within ``CONNECT_TIMEOUT_S``."""
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
        await channel.confirm_delivery().addTimeout(CONNECT_TIMEOUT_S, reactor)
    except BaseException:
        if connection.transport is not None:
            connection.transport.abortConnection()
        raise
    return AMQPChannel(connection, channel)
