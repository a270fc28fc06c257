"""A product's image: an uploaded file the catalog publishes with its product (the catalog
requires the files feature, so these live with the catalog, not with files)."""

from __future__ import annotations

import httpx

from tests.features.catalog.support import create_product
from tests.features.files.support import PNG, upload
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body


async def test_a_product_image_must_be_an_uploaded_image(
    client: httpx.AsyncClient, admin: Account
) -> None:
    product_id = (await create_product(client, admin))["id"]
    image = (await upload(client, admin)).json()["id"]
    text = (await upload(client, admin, b"hello", content_type="text/plain")).json()["id"]
    path = f"/api/v1/products/{product_id}/image"

    refused = await client.put(path, headers=admin.headers, json={"file_id": text})
    assert_error_body(refused, 422, "VALIDATION_ERROR")
    missing = await client.put(
        path, headers=admin.headers, json={"file_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert_error_body(missing, 422, "VALIDATION_ERROR")

    response = await client.put(path, headers=admin.headers, json={"file_id": image})
    assert response.status_code == 200
    assert response.json()["image_file_id"] == image
    public = await client.get(f"/api/v1/products/{product_id}")
    assert public.json()["image_file_id"] == image

    cleared = await client.put(path, headers=admin.headers, json={"file_id": None})
    assert cleared.json()["image_file_id"] is None


async def test_a_product_image_is_as_public_as_its_product(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """The image id was public but the bytes were only the uploading admin's to read."""
    product_id = (await create_product(client, admin))["id"]
    path = f"/api/v1/products/{product_id}/image"
    assert_error_body(await client.get(path), 404, "NOT_FOUND")  # no image yet
    image = (await upload(client, admin)).json()["id"]
    await client.put(path, headers=admin.headers, json={"file_id": image})

    anonymous = await client.get(path)
    assert anonymous.status_code == 200, anonymous.text
    assert anonymous.content == PNG
    assert anonymous.headers["content-type"] == "image/png"
    assert anonymous.headers["cache-control"] == "public, no-cache"
    part = await client.get(path, headers={"Range": "bytes=0-7"})
    assert (part.status_code, part.content) == (206, PNG[:8])
    customer = await signed_up(client)
    assert (await client.get(path, headers=customer.headers)).content == PNG
    # The file itself stays its owner's: only the product publishes it.
    files_path = f"/api/v1/files/{image}/content"
    assert_error_body(await client.get(files_path, headers=customer.headers), 404, "NOT_FOUND")

    hidden = await client.patch(
        f"/api/v1/products/{product_id}", headers=admin.headers, json={"is_active": False}
    )
    assert hidden.status_code == 200
    assert_error_body(await client.get(path), 404, "NOT_FOUND")
    assert_error_body(await client.get(path, headers=customer.headers), 404, "NOT_FOUND")
    as_admin = await client.get(path, headers=admin.headers)
    assert (as_admin.status_code, as_admin.content) == (200, PNG)
    assert as_admin.headers["cache-control"] == "private, no-cache"


async def test_only_admins_set_product_images(client: httpx.AsyncClient, admin: Account) -> None:
    product = await create_product(client, admin)
    customer = await signed_up(client)
    image = (await upload(client, customer)).json()["id"]
    response = await client.put(
        f"/api/v1/products/{product['id']}/image",
        headers=customer.headers,
        json={"file_id": image},
    )
    assert_error_body(response, 403, "FORBIDDEN")
