"""Functional tests of the controller on a real RabbitMQ."""
