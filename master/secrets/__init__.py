"""Secrets: values master.cfg names (``util.Secret('token')``, ``%(secret:token)s``) and
providers hand out when a build needs them (``c['secretsProviders']``), redacted wherever the
build's text is stored.

* ``interfaces.py``: ``ISecretProvider``, what a provider is;
* ``providers/file.py``: ``SecretInAFile``, one file per secret in a directory;
* ``providers/passwordstore.py``: ``SecretInPass``, the ``pass`` password store;
* ``manager.py``: ``SecretManager``, asks the providers in order, the first answer wins;
* ``redactor.py``: ``SecretRedactor``, a rendered secret's value shown as ``<name>``.
"""
