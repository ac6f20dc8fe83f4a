"""Import customers, cards or history: upload → mapping → check → run with progress → report."""

from flask import Blueprint, Response, abort, g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app import clock
from app.htmx import redirect, render
from app.services import import_jobs, importing, permissions
from app.services.permissions import manager_required

bp = Blueprint("imports", __name__)

MAX_UPLOAD = 50 * 1024 * 1024
PREVIEW_ROWS = 5


def _kind_labels() -> dict[str, str]:
    return {
        "customers": _("Clients"),
        "cards": _("Cards"),
        "events": _("Visits and purchases"),
    }


def _encoding_labels() -> dict[str, str]:
    return {
        "": _("Detect automatically"),
        "utf-8": "UTF-8",
        "utf-8-sig": _("UTF-8 with BOM"),
        "gb18030": _("Simplified Chinese (GBK / GB18030)"),
        "big5": _("Traditional Chinese (Big5)"),
        "tis-620": _("Thai (TIS-620)"),
        "cp874": _("Thai (Windows-874)"),
    }


def _job(job_id: str) -> dict:
    """A job of a store the viewer manages, else 404."""
    try:
        job = import_jobs.read_job(job_id)
    except ValueError:
        abort(404)
    if job is None or job.get("store") not in permissions.store_ids(current_user.staff):
        abort(404)
    return job


def _upload_form(errors: dict, status: int = 200, kind: str = "customers", encoding: str = ""):
    return render(
        "imports/index.html",
        "imports/_upload.html",
        status=status,
        errors=errors,
        kind=kind,
        encoding=encoding,
        kinds=_kind_labels(),
        encodings=_encoding_labels(),
        jobs=import_jobs.store_jobs(g.store.id),
    )


@bp.route("/imports")
@manager_required
def index():
    """Upload a file to import, and the store's latest imports."""
    if g.store is None:
        abort(404)
    return _upload_form({})


@bp.route("/imports", methods=["POST"])
@manager_required
def upload():
    """Keep the uploaded file as a job and go on to its column mapping (422 when unusable)."""
    if g.store is None:
        abort(404)
    kind = request.form.get("kind", "")
    encoding = request.form.get("encoding", "")
    errors = {}
    if kind not in importing.KINDS:
        errors["kind"] = _("Choose what the file holds.")
        kind = "customers"
    if encoding and encoding not in _encoding_labels():
        errors["encoding"] = _("Choose an encoding from the list.")
        encoding = ""
    file = request.files.get("file")
    data = b""
    if file is None or not file.filename:
        errors["file"] = _("Choose a file to upload.")
    elif not file.filename.lower().endswith(import_jobs.UPLOAD_SUFFIXES):
        errors["file"] = _("Upload a CSV or Excel (.xlsx) file.")
    else:
        data = file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            errors["file"] = _("The file is larger than 50 MB; split it and upload the parts.")
        elif not data.strip():
            errors["file"] = _("The file is empty.")
    if not errors:
        try:
            table = importing.read_table(data, file.filename, encoding=encoding or None)
        except ValueError:
            errors["file"] = _(
                "The file could not be read. Check that it is a CSV or Excel file, "
                "or choose its encoding."
            )
        else:
            if not len(table):
                errors["file"] = _("The file has a header row but no rows to import.")
    if errors:
        return _upload_form(errors, 422, kind, encoding)
    job_id = import_jobs.create_job(
        g.store, current_user.staff, kind, file.filename, data, clock.now()
    )
    if encoding:
        import_jobs.write_job(job_id, encoding=encoding)
    return redirect(url_for("imports.mapping", job_id=job_id))


def _mapping_ctx(job: dict, encoding: str | None, mapping: dict | None, errors: dict) -> dict:
    table = import_jobs.load_table(job, encoding)
    suggested = (
        mapping or job.get("mapping") or importing.suggest_mapping(job["kind"], table.headers)
    )
    columns = []
    for index, header in enumerate(table.headers):
        target = suggested.get(header) or ""
        if target.startswith("attributes."):
            target = "attribute"
        columns.append({"index": index, "header": header, "target": target})
    detected = table.encoding
    return {
        "job": job,
        "columns": columns,
        "preview": [
            ["" if v is None else str(v) for v in row[: len(table.headers)]]
            for row in table.rows[:PREVIEW_ROWS]
        ],
        "rows": len(table),
        "targets": importing.field_labels(job["kind"]),
        "detected": detected,
        "unsure": detected not in (None, "utf-8", "utf-8-sig"),
        "encoding": encoding or "",
        "encodings": _encoding_labels(),
        "kinds": _kind_labels(),
        "options": job.get("options") or {},
        "errors": errors,
    }


@bp.route("/imports/<job_id>/mapping")
@manager_required
def mapping(job_id: str):
    """Map each column to a field, with the first rows shown (and the encoding to change)."""
    job = _job(job_id)
    if job["state"] not in ("uploaded", "checked") or job.get("purged_at"):
        return redirect(url_for("imports.show", job_id=job_id))
    encoding = request.args.get("encoding", job.get("encoding") or "")
    if encoding not in _encoding_labels():
        encoding = ""
    try:
        ctx = _mapping_ctx(job, encoding, None, {})
    except ValueError:
        ctx = _mapping_ctx(job, "", None, {"encoding": _("The file is not in this encoding.")})
    return render("imports/mapping.html", "imports/_mapping.html", **ctx)


def _posted_mapping(job: dict, headers: list[str]) -> dict:
    result = {}
    allowed = set(importing.fields(job["kind"]))
    for index, header in enumerate(headers):
        choice = request.form.get(f"col-{index}", "")
        if choice == "attribute" and job["kind"] == "customers":
            result[header] = "attributes." + importing._attribute_key(header)
        elif choice in allowed:
            result[header] = choice
        else:
            result[header] = None
    return result


@bp.route("/imports/<job_id>/mapping", methods=["POST"])
@manager_required
def check(job_id: str):
    """Save the mapping and check the whole file without saving: the validation summary."""
    job = _job(job_id)
    if job["state"] not in ("uploaded", "checked") or job.get("purged_at"):
        abort(409)
    encoding = request.form.get("encoding", "")
    if encoding not in _encoding_labels():
        encoding = ""
    try:
        table = import_jobs.load_table(job, encoding)
    except ValueError:
        ctx = _mapping_ctx(job, "", None, {"encoding": _("The file is not in this encoding.")})
        return render("imports/mapping.html", "imports/_mapping.html", status=422, **ctx)
    chosen = _posted_mapping(job, table.headers)
    options = {
        "create_tags": request.form.get("unknown_tags", "create") == "create",
        "triggers_plans": request.form.get("no_plans") != "1",
    }
    job = import_jobs.write_job(job_id, options=options)
    problems = importing.check_mapping(job["kind"], chosen)
    if problems:
        errors = {"mapping": _mapping_errors(job["kind"], chosen)}
        ctx = _mapping_ctx(job, encoding, chosen, errors)
        return render("imports/mapping.html", "imports/_mapping.html", status=422, **ctx)
    from app.tasks.import_jobs import check_import

    import_jobs.start_check(job_id, chosen, encoding or None, options, clock.now())
    check_import(job_id)
    job = import_jobs.read_job(job_id)
    if job["state"] == "uploaded":  # the check could not read the file with this mapping
        ctx = _mapping_ctx(job, encoding, chosen, {"mapping": _mapping_errors(job["kind"], {})})
        return render("imports/mapping.html", "imports/_mapping.html", status=422, **ctx)
    return _check_page(job_id)


def _check_page(job_id: str):
    job = import_jobs.read_job(job_id)
    return render(
        "imports/check.html",
        "imports/_check.html",
        job=job,
        kinds=_kind_labels(),
        percent=import_jobs.progress(job),
    )


@bp.route("/imports/<job_id>/check")
@manager_required
def checked(job_id: str):
    """The check's progress (htmx polls it while the worker checks) and then its summary."""
    job = _job(job_id)
    if job["state"] not in (import_jobs.CHECKING, "checked"):
        return redirect(url_for("imports.show", job_id=job_id))
    return _check_page(job_id)


def _mapping_errors(kind: str, chosen: dict) -> list[str]:
    """The mapping's problems, in the viewer's language."""
    targets = [t for t in chosen.values() if t]
    labels = importing.field_labels(kind)
    errors = []
    for target in sorted({t for t in targets if targets.count(t) > 1}):
        label = labels.get(target) or _("Custom attribute")
        errors.append(_("More than one column is mapped to %(field)s.", field=label))
    if kind == "customers" and not {"name", "phone", "external_id"} & set(targets):
        errors.append(_("Map a column to the name, the phone or the external id."))
    if kind == "cards" and "product" not in targets:
        errors.append(_("Map a column to the card product."))
    ref = {"customer.phone", "customer.external_id", "customer.id"}
    if kind in ("cards", "events") and not ref & set(targets):
        errors.append(_("Map a column to the client's phone or external id."))
    return errors or [_("Check the column mapping.")]


@bp.route("/imports/<job_id>/run", methods=["POST"])
@manager_required
def run(job_id: str):
    """Start the checked import in the background; answer its progress."""
    job = _job(job_id)
    if job["state"] != "checked" or job.get("purged_at"):
        abort(409)
    from app.tasks.import_jobs import run_import

    import_jobs.queue(job_id, clock.now())
    run_import(job_id)
    return redirect(url_for("imports.show", job_id=job_id))


def _status(job_id: str, status: int = 200):
    job = import_jobs.read_job(job_id)
    return render(
        "imports/show.html",
        "imports/_status.html",
        status=status,
        job=job,
        percent=import_jobs.progress(job),
        stale=import_jobs.is_stale(job, clock.now()),
        rejected=import_jobs.rejected_rows(job)[:50],
        kinds=_kind_labels(),
    )


@bp.route("/imports/<job_id>")
@manager_required
def show(job_id: str):
    """An import's progress and, when finished, its report."""
    job = _job(job_id)
    if job.get("purged_at"):
        return _status(job_id)
    if job["state"] in (import_jobs.CHECKING, "checked"):
        return redirect(url_for("imports.checked", job_id=job_id))
    if job["state"] == "uploaded":
        return redirect(url_for("imports.mapping", job_id=job_id))
    return _status(job_id)


@bp.route("/imports/<job_id>/status")
@manager_required
def status(job_id: str):
    """The progress fragment (htmx polls it every second while the import runs)."""
    _job(job_id)
    return _status(job_id)


@bp.route("/imports/<job_id>/cancel", methods=["POST"])
@manager_required
def cancel(job_id: str):
    """Ask a running import to stop after its current batch."""
    job = _job(job_id)
    if job["state"] in import_jobs.ACTIVE:
        import_jobs.request_cancel(job_id)
    return _status(job_id)


@bp.route("/imports/<job_id>/resume", methods=["POST"])
@manager_required
def resume(job_id: str):
    """Continue a cancelled or interrupted import from its last saved row."""
    job = _job(job_id)
    now = clock.now()
    if job.get("purged_at"):
        return _status(job_id, 409)
    stale = job["state"] in import_jobs.ACTIVE and import_jobs.is_stale(job, now)
    if job["state"] in ("cancelled", "failed") or stale:
        from app.tasks.import_jobs import run_import

        import_jobs.queue(job_id, now)
        run_import(job_id)
    return _status(job_id)


@bp.route("/imports/<job_id>/rejected.csv")
@manager_required
def rejected(job_id: str):
    """The rejected rows with the reason, ready to fix and upload again."""
    job = _job(job_id)
    body = "\ufeff" + import_jobs.rejected_csv(job)
    name = f"rejected-{job['kind']}-{job_id[:8]}.csv"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
