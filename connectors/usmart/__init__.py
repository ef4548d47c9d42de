"""uSmart: replace (or add) a dataset file through a signed S3 PUT, then refresh output pipelines.

Docs: shared/platforms/usmart.txt; CONTRACTS.md section 3. Every action is
``POST {base}/org/<orgGUID>/<action>`` with the ``api-key-id`` / ``api-key-secret``
headers. The upload is ``s3:generatePutRequest`` then a PUT of the raw bytes to the
signed URL, with the returned Content-Type and no API key headers.

Not published, chosen with the simulator (docs/platforms/usmart.md): the ``dataset:view``
answer (``result.files[]`` and ``result.resourceContainers[]``), the bodies of
``file:create`` and ``resourceContainer:*``, and following a pipeline run through the
``status`` of its resource container in ``dataset:view``.

Listing datasets: the API has no documented list action, so ``browse("dataset_guid")``
reads the organisation's private DCAT catalogue (``GET {base}/org/<orgGUID>/dcat/private``,
a DCAT-US 1.1 ``data.json``-style document; usmart.txt: "Private will return all
datasets"), sent with the same key headers. Its path, authentication and shape are our
choice, documented in docs/platforms/usmart.md.

The package: ``parameters`` (GUIDs, file and pipeline names), ``schemas`` (the pydantic
Credentials and Target), ``client`` (the S3 error reader and the shapes of uSmart's
answers), ``presentation`` (tables) and ``connector`` (reads, browse, actions and steps).
"""
