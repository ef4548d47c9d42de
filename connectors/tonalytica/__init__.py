"""TONalytica (a Redash fork): run a saved query with parameters, then fetch its result.

Docs: shared/platforms/tonalytica.txt (Redash's "as of V9" docs) and CONTRACTS.md
section 4, which says where the real server differs from them:

- every path starts with ``/api/``;
- a missing or refused API key answers **404** ``Couldn't find resource. Please login
  and try again.``, not 401: we report it as AuthenticationError;
- job statuses are 1 queued, 2 started, 3 finished, 4 failed (a cancelled job is 4 too,
  with ``Query cancelled by user.``); 5 "cancelled" exists in some versions: 4 and 5 are
  both terminal;
- an unknown or expired job id answers **500** (Redash does not handle NoSuchJobError).

A release is two steps: "refresh" (POST ``/api/queries/<id>/results``: a cached result
completes it at once, else it waits on the job) and "fetch" (read the result, keep a
preview). Beyond releases the portal gets: ``browse`` of the saved queries for the mapping
form (filling the parameter declarations), the actions ``query_info``, ``dashboards``,
``dashboard`` and ``archive_query``, step tables (the job, the result preview) and CSV/JSON downloads of the
fetched result streamed through the portal. docs/platforms/tonalytica.md explains the choices.

The package: ``parameters`` (Redash parameter types and coercion), ``schemas`` (the
pydantic Credentials, Target and Params), ``client`` (HTTP with Redash's errors, and the
API's shapes), ``presentation`` (what the portal shows: tables, file names) and
``connector`` (browse, actions, downloads and the release steps).
"""
