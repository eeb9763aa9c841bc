"""The secured mode of the local broker: TLS and SASL listeners as managed Kafka offers them.

One node gets, beside its PLAINTEXT listener (inter-broker traffic, test set-up), one listener per
way a client may authenticate, so that a single broker serves every test of a module:

=============  ===========  ==============================================================
listener       protocol     who gets in
=============  ===========  ==============================================================
``SCRAM``      SASL_SSL     SCRAM-SHA-512 users, created when the storage is formatted
``PLAIN``      SASL_SSL     PLAIN users, listed in the listener's JAAS config
``MTLS``       SSL          clients with a certificate signed by the test CA
``OAUTH``      SASL_SSL     OAUTHBEARER with Kafka's *unsecured* JWT validator (test only:
                            it accepts any unsigned token with a ``sub`` claim)
``WRONGHOST``  SASL_SSL     SCRAM, but its certificate names another host (mismatch tests)
=============  ===========  ==============================================================

The certificates are PEM files made at start-up with ``trustme`` (a dev dependency): a private CA,
a broker certificate for 127.0.0.1 and localhost, a client certificate whose key is encrypted
with ``CLIENT_KEY_PASSWORD``, and a second, unrelated CA for "untrusted certificate" tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCRAM_USER = ("alice", "alice-secret")
PLAIN_USER = ("bob", "bob-secret")
CLIENT_KEY_PASSWORD = "client-key-secret"
LISTENERS = {
    "SCRAM": "SASL_SSL",
    "PLAIN": "SASL_SSL",
    "MTLS": "SSL",
    "OAUTH": "SASL_SSL",
    "WRONGHOST": "SASL_SSL",
}


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the secured mode, in the cluster's work directory."""

    ca: Path
    other_ca: Path
    broker_keystore: Path
    wrong_host_keystore: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    import trustme
    from cryptography.hazmat.primitives import serialization

    def pkcs8(pem: bytes, password: str | None = None) -> bytes:
        # Kafka's PEM keystore reads PKCS#8 keys only; trustme writes the traditional format.
        key = serialization.load_pem_private_key(pem, password=None)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="forwarder test CA")
    files = TlsFiles(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        broker_keystore=directory / "broker.pem",
        wrong_host_keystore=directory / "wrong-host.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    trustme.CA().cert_pem.write_to_path(str(files.other_ca))
    for path, names in (
        (files.broker_keystore, ("127.0.0.1", "localhost")),
        (files.wrong_host_keystore, ("kafka.invalid",)),
    ):
        leaf = ca.issue_cert(*names)
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        path.write_bytes(pkcs8(leaf.private_key_pem.bytes()) + chain)
    client = ca.issue_cert("forwarder-client")
    files.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    files.client_key.write_bytes(pkcs8(client.private_key_pem.bytes(), CLIENT_KEY_PASSWORD))
    return files


def secured_properties(tls: TlsFiles) -> list[str]:
    """``server.properties`` lines configuring the secured listeners (beside their addresses)."""
    jaas = "org.apache.kafka.common.security"
    return [
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={tls.broker_keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca}",
        f"listener.name.wronghost.ssl.keystore.location={tls.wrong_host_keystore}",
        "listener.name.wronghost.ssl.keystore.type=PEM",
        "listener.name.scram.sasl.enabled.mechanisms=SCRAM-SHA-512",
        f"listener.name.scram.scram-sha-512.sasl.jaas.config={jaas}.scram.ScramLoginModule required;",
        "listener.name.wronghost.sasl.enabled.mechanisms=SCRAM-SHA-512",
        f"listener.name.wronghost.scram-sha-512.sasl.jaas.config={jaas}.scram.ScramLoginModule required;",
        "listener.name.plain.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.plain.plain.sasl.jaas.config={jaas}.plain.PlainLoginModule required "
        f'username="{PLAIN_USER[0]}" password="{PLAIN_USER[1]}" user_{PLAIN_USER[0]}="{PLAIN_USER[1]}";',
        "listener.name.mtls.ssl.client.auth=required",
        "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER",
        f"listener.name.oauth.oauthbearer.sasl.jaas.config={jaas}.oauthbearer.OAuthBearerLoginModule "
        'required unsecuredLoginStringClaim_sub="broker";',
        "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class="
        f"{jaas}.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler",
    ]


def add_scram_arguments() -> list[str]:
    """``kafka-storage format`` arguments that create the SCRAM user with the metadata log."""
    user, password = SCRAM_USER
    return ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
