"""The rules about what campaigns are made of: goals, templates, agents and campaigns themselves
(references must exist in the same organization and be of the right kind; changing a campaign's
instructions makes a new version)."""
from services.campaigns import store, templates
from services.campaigns.agents import providers
from services.common.errors import Conflict, Forbidden, Invalid, NotFound

KINDS = {"goals": "goal", "templates": "template", "agents": "agent", "campaigns": "campaign"}


def get(tx, ctx, table, row_id, lock=False):
    row = store.get(tx, table, ctx["org_id"], row_id, lock=lock)
    if row is None:
        raise NotFound(f"{KINDS[table]} not found", id=str(row_id))
    return row


def create(tx, ctx, table, values, facts=None):
    """facts: what other services said about the values (campaigns: {"segment_exists": bool})."""
    check = CHECKS.get(table)
    if check:
        check(tx, ctx, values, None, facts or {})
    row = store.insert(tx, table, ctx["org_id"], values)
    if table == "campaigns":
        store.add_version(tx, row["id"], row["version"], row["instructions"], ctx.get("user_id"))
    return row


def update(tx, ctx, table, row_id, values, facts=None):
    current = get(tx, ctx, table, row_id, lock=True)
    check = CHECKS.get(table)
    if check:
        check(tx, ctx, values, current, facts or {})
    if table == "campaigns" and "instructions" in values \
            and values["instructions"] != current["instructions"]:
        values = dict(values, version=current["version"] + 1)
        store.add_version(tx, row_id, values["version"], values["instructions"], ctx.get("user_id"))
    return store.update(tx, table, ctx["org_id"], row_id, values)


def delete(tx, ctx, table, row_id):
    get(tx, ctx, table, row_id)
    if table in ("goals", "templates", "agents"):
        columns = {"goals": ["goal_id"], "templates": ["template_id"],
                   "agents": ["writer_agent_id", "reviewer_agent_id"]}[table]
        used = sum(store.campaigns_using(tx, ctx["org_id"], c, row_id) for c in columns)
        if used:
            raise Conflict(f"this {KINDS[table]} is used by {used} campaign(s); change them first",
                           campaigns=used)
    if table == "campaigns":
        if store.runs_of_campaign(tx, ctx["org_id"], row_id, active_only=True, limit=1):
            raise Conflict("this campaign has a run in progress; cancel it first")
    store.delete(tx, table, ctx["org_id"], row_id)


def check_template(tx, ctx, values, current, facts):
    merged = dict(current or {}, **values)
    errors = templates.placeholder_errors(merged)
    if merged.get("channel", "email") == "email" and not (merged.get("subject") or "").strip():
        errors.setdefault("subject", []).append("an email template needs a subject")
    if errors:
        raise Invalid("the template has placeholders that cannot be filled", errors=errors)


# Who may point an agent at a model endpoint and name the key it is sent: the key is the
# operator's, so only owners and admins (members still write instructions, voice, names).
PROVIDER_FIELDS = ("provider", "base_url", "api_key_env", "model")
PROVIDER_ROLES = ("owner", "admin")


def check_agent_role(ctx, values, current):
    merged = dict(current or {}, **values)
    if current is None:
        sensitive = merged.get("provider", "builtin") != "builtin"
        what = "create an agent with an external model provider"
    else:
        changed = [f for f in PROVIDER_FIELDS if f in values and values[f] != current.get(f)]
        # The model of a builtin agent means nothing outside this process; anything else counts.
        both_builtin = current.get("provider") == merged.get("provider") == "builtin"
        sensitive = bool(changed) and (not both_builtin or changed != ["model"])
        what = "change an agent's " + "/".join(changed)
    if sensitive and ctx.get("role") not in PROVIDER_ROLES:
        raise Forbidden(f"only an owner or admin may {what}", fields=list(PROVIDER_FIELDS))


def check_agent(tx, ctx, values, current, facts):
    merged = dict(current or {}, **values)
    check_agent_role(ctx, values, current)
    errors = providers.settings_errors(
        {k: values[k] for k in ("api_key_env", "base_url") if k in values} if current
        else merged)
    if errors:
        raise Invalid("the agent's provider settings are not allowed", errors=errors)
    if current and "type" in values and values["type"] != current["type"]:
        used = store.campaigns_using(tx, ctx["org_id"], f"{current['type']}_agent_id", current["id"])
        if used:
            raise Invalid("agent in use", errors={"type": [
                f"this {current['type']} is used by {used} campaign(s)"]})
    if merged.get("provider") == "openai_compatible":
        errors = {}
        if not merged.get("base_url"):
            errors["base_url"] = ["an openai_compatible agent needs the endpoint's base URL"]
        if not merged.get("model") or merged.get("model") == "builtin":
            errors["model"] = ["name the model the endpoint serves"]
        if errors:
            raise Invalid("incomplete provider settings", errors=errors)


def check_campaign(tx, ctx, values, current, facts):
    merged = dict(current or {}, **values)
    errors = {}

    def ref(field, table, want_type=None):
        row_id = values.get(field)
        if row_id is None:
            return
        row = store.get(tx, table, ctx["org_id"], row_id)
        if row is None:
            errors[field] = [f"no such {KINDS[table]} in this organization"]
        elif want_type and row["type"] != want_type:
            errors[field] = [f"that agent is a {row['type']}, not a {want_type}"]
        elif table == "templates" and row["channel"] != merged.get("channel"):
            errors[field] = [f"that is a {row['channel']} template; the campaign is {merged.get('channel')}"]

    ref("goal_id", "goals")
    ref("writer_agent_id", "agents", "writer")
    ref("reviewer_agent_id", "agents", "reviewer")
    ref("template_id", "templates")
    # Segments live in contacts: the service asked segment_exists before this transaction.
    if values.get("segment_id") is not None and not facts.get("segment_exists"):
        errors["segment_id"] = ["no such segment"]
    if current and "channel" in values and "template_id" not in values and merged.get("template_id"):
        template = store.get(tx, "templates", ctx["org_id"], merged["template_id"])
        if template and template["channel"] != values["channel"]:
            errors.setdefault("template_id", []).append(
                f"the campaign's template is for {template['channel']}; choose another or none")
    if current and "channel" in values and values["channel"] != current["channel"] \
            and store.runs_of_campaign(tx, ctx["org_id"], current["id"], active_only=False, limit=1):
        errors.setdefault("channel", []).append("a campaign that has run cannot change channel")
    if errors:
        raise Invalid("the campaign refers to things that do not fit", errors=errors)


CHECKS = {"templates": check_template, "agents": check_agent, "campaigns": check_campaign}


def agent_views(tx, ctx, rows):
    counts = store.active_campaign_counts(tx, ctx["org_id"], [r["id"] for r in rows]) if rows else {}
    return [dict(r, active_campaign_count=counts.get(str(r["id"]), 0)) for r in rows]


VERSIONS_SHOWN = 20


def campaign_view(tx, ctx, row):
    """A campaign with its latest VERSIONS_SHOWN instruction versions (newest first) and how many
    versions there are in all, and its runs in progress."""
    out = dict(row)
    out["versions"], out["versions_total"] = store.versions(tx, ctx["org_id"], row["id"],
                                                            VERSIONS_SHOWN)
    out["active_runs"] = store.runs_of_campaign(tx, ctx["org_id"], row["id"], active_only=True)
    return out
