"""Service-account tokens as the apiserver issues and checks them.

* TokenRequest (``POST .../serviceaccounts/<name>/token``): an RS256-signed JWT with the
  apiserver's claims — ``iss``, ``sub: system:serviceaccount:<ns>:<name>``, ``aud``, ``exp``,
  ``iat``, ``nbf``, ``jti`` and ``kubernetes.io: {namespace, serviceaccount: {name, uid}}`` — and
  a header ``kid`` derived from the public key the way kube-apiserver derives it;
* TokenReview (``POST /apis/authentication.k8s.io/v1/tokenreviews``): signature, issuer, expiry,
  audiences (intersection with the requested ones, or with the API audiences) and the service
  account still existing with the same uid;
* bearer-token authentication of API requests with the same rules (an invalid token of this
  issuer is 401; any other credential is the test's admin);
* ``/.well-known/openid-configuration`` and ``/openid/v1/jwks`` (service-account issuer
  discovery), so a verifier can check tokens with the public key alone.

The RSA key is made on first use (startup stays fast). The issuer defaults to the emulator's own
URL, so OIDC discovery works against it; the API audiences default to ``[issuer]``, like the
apiserver's ``--api-audiences``. The token clock can be moved forward by tests (``advance``) to
see expiry without waiting.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import errors
from .errors import Cause
from .store import Obj, Store

MIN_EXPIRATION = 600  # the apiserver refuses shorter TokenRequests
MAX_EXPIRATION = 1 << 32
DEFAULT_EXPIRATION = 3600
SA_PREFIX = "system:serviceaccount:"
_CACHE_LIMIT = 4096


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class InvalidToken(Exception):
    """A token of this issuer that does not authenticate (the message is the apiserver's)."""


@dataclass(frozen=True)
class User:
    username: str
    uid: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]]
    namespace: str
    name: str

    @property
    def service_account(self) -> str:
        return f"{self.namespace}/{self.name}"

    def as_dict(self) -> Obj:
        out: Obj = {"username": self.username, "uid": self.uid, "groups": list(self.groups)}
        if self.extra:
            out["extra"] = self.extra
        return out


class TokenAuthority:
    """Issues and validates service-account JWTs for one emulated cluster."""

    def __init__(
        self,
        store: Store,
        issuer: Callable[[], str],
        api_audiences: list[str] | None = None,
    ) -> None:
        self.store = store
        self._issuer = issuer
        self._api_audiences = api_audiences
        self._key: rsa.RSAPrivateKey | None = None
        self._kid = ""
        self.offset = 0.0  # seconds added to the wall clock (tests move time forward)
        self._parsed: dict[str, tuple[Obj, Obj, bytes, bytes]] = {}
        self._verified: set[str] = set()  # signatures already checked (the key never changes)

    # ---- keys and clock ----------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self._issuer()

    @property
    def api_audiences(self) -> list[str]:
        return list(self._api_audiences or [self.issuer])

    def now(self) -> float:
        return time.time() + self.offset

    def _private_key(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            der = self._key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self._kid = b64url(hashlib.sha256(der).digest())  # how kube-apiserver names its keys
        return self._key

    def jwks(self) -> Obj:
        numbers = self._private_key().public_key().public_numbers()

        def uint(n: int) -> str:
            return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        key = {
            "use": "sig",
            "kty": "RSA",
            "kid": self._kid,
            "alg": "RS256",
            "n": uint(numbers.n),
            "e": uint(numbers.e),
        }
        return {"keys": [key]}

    def public_key_pem(self) -> str:
        return (
            self._private_key()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def openid_configuration(self) -> Obj:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # ---- TokenRequest ------------------------------------------------------------------------
    def token_request(self, namespace: str, name: str, body: Any) -> Obj:
        sa_rt = self.store.registry.by_key(("", "serviceaccounts"))
        assert sa_rt is not None
        sa = self.store.get(sa_rt, namespace, name)  # 404 when the service account is missing
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request is not a JSON object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind and kind != "TokenRequest":
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind (TokenRequest)"
            )
        if api_version and api_version != "authentication.k8s.io/v1":
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                "version (authentication.k8s.io/v1)"
            )
        spec = dict(body.get("spec") or {})
        if spec.get("boundObjectRef"):
            raise errors.bad_request(
                "spec.boundObjectRef is not supported by the emulator (it has no Pods)"
            )
        seconds = spec.get("expirationSeconds")
        seconds = DEFAULT_EXPIRATION if seconds is None else seconds
        causes = []
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            causes.append(
                Cause("FieldValueInvalid", f"Invalid value: {seconds!r}", "spec.expirationSeconds")
            )
        elif seconds < MIN_EXPIRATION:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                    "spec.expirationSeconds",
                )
            )
        elif seconds > MAX_EXPIRATION:
            causes.append(
                Cause(
                    "FieldValueTooLong",
                    f"Invalid value: {seconds}: may not specify a duration larger than 2^32 "
                    "seconds",
                    "spec.expirationSeconds",
                )
            )
        audiences = spec.get("audiences") or self.api_audiences
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            causes.append(
                Cause("FieldValueInvalid", "Invalid value: must be strings", "spec.audiences")
            )
        if causes:
            raise errors.invalid("TokenRequest", "authentication.k8s.io", name, causes)
        now = int(self.now())
        meta = sa["metadata"]
        claims = {
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": meta["uid"]},
            },
            "nbf": now,
            "sub": f"{SA_PREFIX}{namespace}:{name}",
        }
        token = self.sign(claims)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": rfc3339(now),
            },
            "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": None},
            "status": {"token": token, "expirationTimestamp": rfc3339(now + seconds)},
        }

    def sign(self, claims: Obj) -> str:
        key = self._private_key()
        header = {"alg": "RS256", "kid": self._kid}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    # ---- validation --------------------------------------------------------------------------
    def _parse(self, token: str) -> tuple[Obj, Obj, bytes, bytes] | None:
        """(header, claims, signing input, signature) of a JWT, or None if it is not one."""
        cached = self._parsed.get(token)
        if cached is not None:
            return cached
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except (ValueError, TypeError):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return None
        if len(self._parsed) >= _CACHE_LIMIT:
            self._parsed.clear()
        parsed = (header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)
        self._parsed[token] = parsed
        return parsed

    def is_ours(self, token: str) -> bool:
        """True if the token claims this cluster's issuer (it then has to be valid)."""
        parsed = self._parse(token)
        return parsed is not None and parsed[1].get("iss") == self.issuer

    def validate(self, token: str, audiences: list[str] | None = None) -> tuple[User, list[str]]:
        """The user and the audiences the token is good for; raises :class:`InvalidToken`."""
        parsed = self._parse(token)
        if parsed is None or parsed[1].get("iss") != self.issuer or self._key is None:
            raise InvalidToken("invalid bearer token")
        header, claims, signing_input, signature = parsed
        if header.get("alg") != "RS256":
            raise InvalidToken(
                "invalid bearer token, square/go-jose: unexpected signature algorithm"
            )
        if token not in self._verified:
            try:
                self._key.public_key().verify(
                    signature, signing_input, padding.PKCS1v15(), hashes.SHA256()
                )
            except InvalidSignature:
                raise InvalidToken(
                    "invalid bearer token, square/go-jose: error in cryptographic primitive"
                ) from None
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified.add(token)
        wanted = list(audiences or self.api_audiences)
        aud = claims.get("aud")
        token_audiences = [aud] if isinstance(aud, str) else list(aud or [])
        valid_for = [a for a in wanted if a in token_audiences]
        if not valid_for:
            raise InvalidToken(
                f"invalid bearer token, token audiences {json.dumps(token_audiences)} is invalid "
                f"for the target audiences {json.dumps(wanted)}"
            )
        now = self.now()
        if not isinstance(claims.get("exp"), int) or now >= claims["exp"]:
            raise InvalidToken("invalid bearer token, service account token has expired")
        if isinstance(claims.get("nbf"), int) and now < claims["nbf"] - 60:
            raise InvalidToken("invalid bearer token, service account token is not valid yet")
        private = claims.get("kubernetes.io") or {}
        namespace = private.get("namespace", "")
        sa_ref = private.get("serviceaccount") or {}
        name, uid = sa_ref.get("name", ""), sa_ref.get("uid", "")
        if claims.get("sub") != f"{SA_PREFIX}{namespace}:{name}":
            raise InvalidToken("invalid bearer token, sub does not match the service account")
        sa_rt = self.store.registry.by_key(("", "serviceaccounts"))
        assert sa_rt is not None
        try:
            sa = self.store.get(sa_rt, namespace, name)
        except errors.ApiError as e:
            raise InvalidToken(f"invalid bearer token, {e.message}") from None
        meta = sa["metadata"]
        if meta.get("deletionTimestamp"):
            raise InvalidToken(
                f"invalid bearer token, service account {namespace}/{name} has been deleted"
            )
        if meta["uid"] != uid:
            raise InvalidToken(
                f"invalid bearer token, service account UID ({meta['uid']}) does not match "
                f"claim ({uid})"
            )
        user = User(
            username=f"{SA_PREFIX}{namespace}:{name}",
            uid=uid,
            groups=(
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
            extra=(
                {"authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]}
                if claims.get("jti")
                else {}
            ),
            namespace=namespace,
            name=name,
        )
        return user, valid_for

    # ---- TokenReview -------------------------------------------------------------------------
    def token_review(self, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request is not a JSON object")
        spec = dict(body.get("spec") or {})
        token = spec.get("token") or ""
        audiences = list(spec.get("audiences") or [])
        status: Obj
        try:
            user, valid_for = self.validate(token, audiences or None)
            status = {"authenticated": True, "user": user.as_dict(), "audiences": valid_for}
        except InvalidToken as e:
            # the apiserver's union authenticator aggregates its authenticators' errors
            status = {"user": {}, "error": f"[{e}]"}
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }


def unauthorized() -> errors.ApiError:
    return errors.ApiError(401, "Unauthorized", "Unauthorized")
