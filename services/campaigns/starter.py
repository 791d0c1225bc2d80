"""A new organization's starting kit: a writer and a reviewer agent (builtin provider), a goal, an
email template and an email campaign that uses them. Seeding twice changes nothing. `progress`
says how far the organization got with it (the dashboard's getting-started steps)."""
from services.campaigns import store

WRITER = {"type": "writer", "name": "Starter writer", "title": "Outreach writer",
          "model": "builtin", "provider": "builtin",
          "voice": "Warm, plain and specific; short paragraphs; no hype.",
          "instructions": "Write one personal message per contact that serves the campaign goal.",
          "is_starter": True}
REVIEWER = {"type": "reviewer", "name": "Starter reviewer", "title": "Compliance reviewer",
            "model": "builtin", "provider": "builtin", "voice": "",
            "instructions": "Flag unresolved placeholders, missing subjects, SMS without opt-out "
                            "wording or longer than two segments, banned phrases and insecure links.",
            "is_starter": True}
TEMPLATE = {"channel": "email", "name": "Starter introduction",
            "subject": "{{first_name}}, a quick hello from {{organization}}",
            "preheader": "Two minutes of your time, no more.",
            "body": "Hi {{first_name}},\n\nI'm reaching out from {{organization}} because we think "
                    "we could help you. Would you be open to a short conversation next week?",
            "is_starter": True}


def seed(tx, org_id, organization_name, description):
    """Create whatever part of the kit is missing; returns the starter campaign row."""
    existing = {r["type"]: r for r in store.starter(tx, org_id, "agents")}
    writer = existing.get("writer") or store.insert(tx, "agents", org_id, WRITER)
    reviewer = existing.get("reviewer") or store.insert(tx, "agents", org_id, REVIEWER)
    campaigns = store.starter(tx, org_id, "campaigns")
    if campaigns:
        return campaigns[0]
    goal = store.insert(tx, "goals", org_id, {
        "name": "Start a conversation",
        "description": "Introduce " + (organization_name or "our organization")
                       + " and ask for a short conversation"
                       + (f" about how we help: {description.strip()}" if (description or "").strip() else "."),
        "is_starter": True})
    template = store.insert(tx, "templates", org_id, TEMPLATE)
    campaign = store.insert(tx, "campaigns", org_id, {
        "name": "Starter email campaign", "channel": "email", "goal_id": goal["id"],
        "writer_agent_id": writer["id"], "reviewer_agent_id": reviewer["id"],
        "template_id": template["id"], "status": "active", "version": 1,
        "instructions": "Keep it short and friendly; one clear question at the end.",
        "is_starter": True})
    store.add_version(tx, campaign["id"], 1, campaign["instructions"], None)
    return campaign


def progress(tx, org_id):
    """{starter_campaign_id, writer_selected, reviewer_selected, test_run_done}: the starter
    campaign has a writer, a reviewer, and at least one test run (of any outcome). When the
    starter campaign was deleted (or is not seeded yet), the same questions are asked of every
    campaign of the organization, so deleting it never leaves the dashboard stuck."""
    row = store.starter_progress(tx, org_id)
    if row is None:
        row = dict(store.any_campaign_progress(tx, org_id), id=None)
    return {"starter_campaign_id": str(row["id"]) if row["id"] else None,
            "writer_selected": row["writer_selected"],
            "reviewer_selected": row["reviewer_selected"],
            "test_run_done": row["test_run_done"]}
