"""Smoke test of the client openapi-python-client generated from /openapi.json (imported as
`cardplane_client` from PYTHONPATH), against a running `cardplane serve`: create a cardholder,
list cardholders with an integer `limit`, upload a document (multipart) and list it.

HTTP basic auth: the document declares the `basic_auth` scheme (http/basic) on every operation that
takes an API key, so the generator hands those operations an `AuthenticatedClient`; this
generator's client only carries a token and a prefix (it has no username/password variant), so
the credentials go in as `prefix="Basic"` and the base64 of `key_id:secret`.
"""

import base64
import io
import os
import sys

from cardplane_client import AuthenticatedClient
from cardplane_client.api.cardholders import (
    create_cardholder,
    get_cardholder,
    list_cardholders,
    list_documents,
    upload_document,
)
from cardplane_client.models import (
    AddressRequest,
    CardholderEnvelope,
    CardholderList,
    CardholderRequest,
    DocumentRequest,
    DocumentUpload,
    DocumentUploadKind,
    UploadedDocumentEnvelope,
    UploadedDocumentList,
)
from cardplane_client.types import File

# The smallest PNG: the signature, IHDR, IDAT and IEND of a 1x1 image.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def check(condition, what, detail=None):
    if not condition:
        sys.exit(f"generated client smoke test failed: {what}: {detail!r}")


def main():
    key = os.environ["CARDPLANE_API_KEY"]
    client = AuthenticatedClient(
        base_url=os.environ["CARDPLANE_URL"],
        token=base64.b64encode(key.encode()).decode(),
        prefix="Basic",
        raise_on_unexpected_status=True,
    )
    with client:
        created = create_cardholder.sync_detailed(
            client=client,
            body=CardholderRequest(
                first_name="Josh",
                last_name="Wilson",
                email="pat@wilson.com",
                phone_number="+16508881111",
                date_of_birth="1982-06-20",
                address=AddressRequest(
                    street_one="1800 Gates Ave",
                    locality="Ridgewood",
                    region="NY",
                    postal_code="11385",
                    country="USA",
                ),
                document=DocumentRequest(type_="ssn", value="490940000"),
            ),
        )
        check(created.status_code == 200, "create_cardholder", created.content)
        check(isinstance(created.parsed, CardholderEnvelope), "create_cardholder parsed", created.parsed)
        holder = created.parsed.cardholder
        check(holder.kyc_status == "PASSED", "kyc_status", holder.kyc_status)

        page = list_cardholders.sync(client=client, limit=10)
        check(isinstance(page, CardholderList), "list_cardholders", page)
        ids = [c.cardholder.id for c in page.cardholders]
        check(holder.id in ids and page.total >= 1, "the new cardholder is listed", ids)

        fetched = get_cardholder.sync(cardholder_id=holder.id, client=client)
        check(isinstance(fetched, CardholderEnvelope) and fetched.cardholder.id == holder.id, "get_cardholder", fetched)

        uploaded = upload_document.sync_detailed(
            cardholder_id=holder.id,
            client=client,
            body=DocumentUpload(
                file=File(payload=io.BytesIO(PNG), file_name="id.png", mime_type="image/png"),
                kind=DocumentUploadKind.IDENTITY_DOCUMENT,
            ),
        )
        check(uploaded.status_code == 200, "upload_document", uploaded.content)
        check(isinstance(uploaded.parsed, UploadedDocumentEnvelope), "upload_document parsed", uploaded.parsed)
        document = uploaded.parsed.document
        check(document.kind == "identity_document" and document.size_bytes == len(PNG), "the document", document)

        documents = list_documents.sync(cardholder_id=holder.id, client=client)
        check(isinstance(documents, UploadedDocumentList), "list_documents", documents)
        check([d.id for d in documents.documents] == [document.id], "the document is listed", documents)

        # Without credentials the same operation is refused in the documented envelope.
        anonymous = AuthenticatedClient(base_url=os.environ["CARDPLANE_URL"], token="", prefix="")
        refused = list_cardholders.sync_detailed(client=anonymous)
        check(refused.status_code == 401, "no credentials", refused.status_code)

    print(f"generated client: created, listed ({page.total}), fetched {holder.id}, uploaded and listed {document.id}")


if __name__ == "__main__":
    main()
