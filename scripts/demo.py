"""`make demo`: the main job (issue 2, steps 1-10) over HTTP against the stack `make run` started,
saying in plain words what happened at each step. Each run signs up its own fresh organization,
so it can be run again and again.

    GATEWAY_URL=http://127.0.0.1:8000 python -m scripts.demo
"""
import email.utils
import os
import sys
import time
import uuid

import requests

from scripts.seed_demo import (CSV, MAPPING, Client, all_contacts, configure_email, ensure_segment,
                               ensure_tag, import_csv, items, run_env, summary, tag_contacts)
from services.common.config import load_config


def settings():
    """Where the stack is: the environment, else what `make run` wrote to var/run.env, else
    config.yml's defaults."""
    found = run_env()
    config = load_config()
    for key in ("GATEWAY_PORT", "SMTP_SINK_PORT", "SMTP_SINK_HTTP_PORT"):
        found[key] = os.environ.get(key) or found.get(key) or str(config[key])
    found["GATEWAY_URL"] = (os.environ.get("GATEWAY_URL") or found.get("GATEWAY_URL")
                            or f"http://127.0.0.1:{found['GATEWAY_PORT']}")
    found["SINK_URL"] = f"http://127.0.0.1:{found['SMTP_SINK_HTTP_PORT']}"
    return found


class Demo:
    def __init__(self, where):
        self.where = where
        self.api = Client(where["GATEWAY_URL"])
        self.tag = uuid.uuid4().hex[:6]
        self.state = {}
        self.done = []

    # -- output -------------------------------------------------------------------------------
    def step(self, number, title):
        print(f"\n{number}. {title}")

    def say(self, text):
        print(f"   {text}")

    def wait(self, what, fetch, ready, timeout=60, every=0.5):
        deadline = time.time() + timeout
        while True:
            value = fetch()
            if ready(value):
                return value
            if time.time() > deadline:
                raise TimeoutError(f"gave up waiting for {what} after {timeout}s")
            time.sleep(every)

    def sink(self):
        return requests.get(self.where["SINK_URL"] + "/messages", timeout=10).json()

    # -- the steps ----------------------------------------------------------------------------
    def sign_up(self):
        """Sign up and log in"""
        self.step(1, "Sign up an organization with its owner, then log in")
        org = f"Demo Outreach {self.tag}"
        self.email = f"owner+{self.tag}@example.org"
        password = f"demo-{uuid.uuid4().hex[:12]}"
        answer = self.api.post("/signup", json={
            "organization": {"name": org, "description": "Runs the outreach demo"},
            "owner": {"name": "Jordan Ellis", "email": self.email, "password": password}})
        org_id = answer["organization"]["id"]
        self.say(f"signed up '{org}' (organization {org_id}) with owner {self.email}")
        answer = self.api.post("/auth/login", json={"email": self.email, "password": password})
        self.api.signed_in(answer["token"], org_id)
        self.say("logged in and received a bearer token; every call below carries it")

    def import_contacts(self):
        """Import contacts from a CSV"""
        self.step(2, "Import contacts from a CSV upload with a column mapping")
        first = import_csv(self.api, CSV, MAPPING)
        self.say(f"{os.path.basename(CSV)} (a Mailchimp export): {summary(first)}")
        for r in (first or {}).get("rejected") or []:
            self.say(f"  rejected record {r.get('record')}: {r.get('reason')}")
        for w in ((first or {}).get("warnings") or [])[:5]:
            self.say(f"  warning on record {w.get('record')}: {w.get('field')}: {w.get('message')}")
        again = import_csv(self.api, CSV, MAPPING)
        self.say(f"the same file again: {summary(again)}")
        contacts = all_contacts(self.api)
        self.say(f"the organization now has {len(contacts)} contacts (no duplicates)")
        self.state["contacts"] = contacts

    def tag_and_segment(self):
        """Tag and segment"""
        self.step(3, "Create a tag, tag contacts, save a segment of the tagged contacts")
        tag = ensure_tag(self.api, "Spring outreach")
        chosen = [c for c in self.state["contacts"] if c.get("email")][:6]
        phone_only = self.api.post("/contacts", json={
            "first_name": "Sam", "last_name": "Reyes", "phone": "+1 202-555-0100"})
        self.say("added contact Sam Reyes with a phone number and no e-mail address")
        tagged = chosen + [phone_only]
        tag_contacts(self.api, tag["id"], [c["id"] for c in tagged])
        self.say(f"tag 'Spring outreach' put on {len(tagged)} contacts: "
                 + ", ".join(c.get("email") or "Sam Reyes (no e-mail)" for c in tagged))
        inactive, unsubscribed = chosen[-2], chosen[-1]
        self.api.call("PATCH", f"/contacts/{inactive['id']}", json={"active": False})
        self.say(f"deactivated {inactive['email']}")
        self.api.post(f"/contacts/{unsubscribed['id']}/unsubscribes",
                      json={"channel": "email", "source": "admin"})
        self.say(f"unsubscribed {unsubscribed['email']} from e-mail")
        segment = ensure_segment(self.api, "Spring outreach list", tag["id"])
        count = self.api.get(f"/segments/{segment['id']}/count")
        self.say(f"segment 'Spring outreach list' saved ({segment['id']}): contacts carrying the "
                 f"tag; it holds {count.get('count', count) if isinstance(count, dict) else count}")
        self.state.update(tag=tag, segment=segment, chosen=chosen, tagged=tagged)

    def email_setup(self):
        """Email setup"""
        self.step(4, "Email setup: sender identity and the outgoing SMTP provider")
        port = self.where["SMTP_SINK_PORT"]
        configured = configure_email(self.api, "Jordan Ellis", f"jordan.ellis+{self.tag}@example.org",
                                     "127.0.0.1", port)
        self.say(f"sender Jordan Ellis <jordan.ellis+{self.tag}@example.org>; SMTP 127.0.0.1:{port}, "
                 "no TLS (the local sink started by make run)")
        self.state["email_settings"] = configured or {}

    def campaign(self):
        """Goal, template, campaign"""
        self.step(5, "Create a goal, an email template and an email campaign with the starter agents")
        goal = self.api.post("/goals", json={
            "name": "Book an intro call", "description": "Get a 20-minute call on the calendar"})
        template = self.api.post("/templates", json={
            "name": "Intro", "channel": "email", "subject": "A quick idea for {{first_name}}",
            "body": "Hi {{first_name}},\n\nWe help teams like yours reach people who want to hear "
                    "from them. Could we find 20 minutes next week?\n\nJordan"})
        agents = items(self.api.get("/agents"))
        writer = next(a for a in agents if a.get("type") == "writer")
        reviewer = next(a for a in agents if a.get("type") == "reviewer")
        self.say(f"goal '{goal['name']}', template '{template['name']}' (subject "
                 f"'{template['subject']}')")
        self.say(f"starter agents: writer '{writer['name']}', reviewer '{reviewer['name']}'")
        self.state.update(goal=goal, template=template, writer=writer, reviewer=reviewer)

    def preflight(self):
        """Preflight"""
        self.step(6, "Preflight: a campaign missing pieces cannot run, and says what is missing")
        bare = self.api.post("/campaigns", json={"name": f"Unfinished {self.tag}", "channel": "email",
                                                 "status": "inactive"})
        answer = self.api.post(f"/campaigns/{bare['id']}/runs", json={"type": "live"}, expect=(422,))
        reasons = answer.get("reasons", [])
        self.say(f"starting it answered 422 with {len(reasons)} unmet requirements at once:")
        for r in reasons:
            self.say(f"  - {r.get('requirement')}: {r.get('message')}")
        s = self.state
        campaign = self.api.post("/campaigns", json={
            "name": f"Spring intro {self.tag}", "channel": "email", "goal_id": s["goal"]["id"],
            "template_id": s["template"]["id"], "writer_agent_id": s["writer"]["id"],
            "reviewer_agent_id": s["reviewer"]["id"], "segment_id": s["segment"]["id"],
            "status": "active"})
        self.say(f"a complete campaign 'Spring intro {self.tag}' ({campaign['id']}) is ready to run")
        s["campaign"] = campaign

    def drafts_of(self, run):
        return items(self.api.get("/drafts", params={"run_id": run["id"], "limit": 500}))

    def run_until_drafted(self, run):
        """Until every targeted recipient has a written draft or a skip (or the run ended)."""
        def ready(r):
            if r.get("status") in ("completed", "failed", "cancelled"):
                return True
            c = r.get("counts") or {}
            if not c.get("targeted"):
                return False
            written = [d for d in self.drafts_of(r) if d.get("status") != "generating"]
            return len(written) + c.get("skipped", 0) >= c["targeted"]
        return self.wait("the run's drafts", lambda: self.api.get(f"/runs/{run['id']}"), ready,
                         timeout=120, every=1)

    def test_run(self):
        """Test run"""
        self.step(7, "Test run: written and sent only to the test recipients (the owner)")
        before = len(self.sink())
        run = self.api.post(f"/campaigns/{self.state['campaign']['id']}/runs", json={"type": "test"})
        self.say(f"test run {run['id']} queued")
        run = self.run_until_drafted(run)
        drafts = self.drafts_of(run)
        self.say(f"{len(drafts)} draft(s) written, to: " + ", ".join(d.get("to_address", "?") for d in drafts)
                 + f"; marked test: {all(d.get('is_test') for d in drafts)}")
        if any(d.get("status") == "pending_approval" for d in drafts):
            self.api.post(f"/runs/{run['id']}/approve-all")
            self.say("approved the test draft(s)")
        try:
            mail = self.wait("the test email in the SMTP sink", self.sink, lambda m: len(m) > before)
        except TimeoutError:
            comms = items(self.api.get("/communications", params={"run_id": run["id"]}))
            raise RuntimeError("the SMTP sink received nothing for the test run; its communications: "
                               + ("; ".join(f"to {c.get('to_address')} {c.get('status')}"
                                            + (f" ({c.get('error')})" if c.get("error") else "")
                                            for c in comms) or "none"))
        new = mail[before:]
        self.say(f"the SMTP sink received {len(new)} message(s): "
                 + "; ".join(f"to {m['rcpt_to']} '{m['subject']}'" for m in new))
        comms = items(self.api.get("/communications", params={"run_id": run["id"]}))
        self.say(f"{len(comms)} communication(s) recorded for the test run, marked test: "
                 f"{all(c.get('is_test') for c in comms)}")

    def live_run(self):
        """Live run, approvals, sending"""
        self.step(8, "Live run to the segment: drafts, reviewer verdicts, approvals, SMTP sending")
        before = len(self.sink())
        run = self.api.post(f"/campaigns/{self.state['campaign']['id']}/runs", json={"type": "live"})
        self.say(f"live run {run['id']} queued")
        run = self.run_until_drafted(run)
        counts = run.get("counts", {})
        self.say(f"targeted {counts.get('targeted')}, drafted {counts.get('drafted')}, "
                 f"skipped {counts.get('skipped')}")
        who = {c["id"]: c.get("email") or c.get("name") or c["id"] for c in self.state["contacts"]}
        who.update({c["id"]: c.get("email") or "Sam Reyes" for c in self.state.get("tagged", [])})
        for skip in run.get("skips") or []:
            self.say(f"  skipped {who.get(skip['contact_id'], skip['contact_id'])}: {skip['reason']}")
        drafts = [d for d in self.drafts_of(run) if d.get("status") == "pending_approval"]
        for d in drafts:
            verdict, reasons = d.get("verdict"), d.get("review_reasons") or []
            self.say(f"  draft to {d.get('to_address')}: '{d.get('subject')}' — reviewer: {verdict}"
                     + (f" ({'; '.join(map(str, reasons))[:100]})" if reasons else ""))
        first, second = drafts[0], drafts[1] if len(drafts) > 1 else None
        self.api.post(f"/drafts/{first['id']}/approve")
        self.say(f"approved the draft to {first.get('to_address')}")
        rejected = None
        if second:
            self.api.post(f"/drafts/{second['id']}/reject", json={"note": "not a fit this spring"})
            rejected = second.get("to_address")
            self.say(f"rejected the draft to {rejected}")
        self.api.post(f"/runs/{run['id']}/approve-all")
        self.say("approved all the remaining drafts of the run")
        expected = len(drafts) - (1 if second else 0)
        mail = self.wait("the approved emails in the SMTP sink", self.sink,
                         lambda m: len(m) - before >= expected, timeout=90)
        new = mail[before:]
        recipients = sorted(r for m in new for r in m["rcpt_to"])
        wanted = sorted(d["to_address"] for d in drafts if d["to_address"] != rejected)
        self.say(f"the SMTP sink received {len(new)} message(s), to: {', '.join(recipients)}")
        self.say("exactly the approved drafts' recipients, and the rejected one got nothing: "
                 + ("yes" if recipients == wanted else f"NO (expected {', '.join(wanted)})"))
        self.say(f"first Message-ID: {new[0]['message_id']}")
        self.state.update(run=run, sent_mail=new)

    def reply(self):
        """A reply joins its thread"""
        self.step(9, "A reply arrives at the inbound email webhook and joins its thread")
        original = self.state["sent_mail"][0]
        key = self.inbound_key()
        replier = original["rcpt_to"][0]
        raw = (
            f"From: {replier}\r\nTo: {original['from']}\r\n"
            f"Subject: Re: {original['subject']}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            f"Message-ID: <reply-{uuid.uuid4().hex}@example.com>\r\n"
            f"In-Reply-To: {original['message_id']}\r\nReferences: {original['message_id']}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Sounds good, Tuesday at 10 works for me.\r\n\r\n"
            f"On Mon, Jordan Ellis wrote:\r\n> Could we find 20 minutes next week?\r\n")
        resp = requests.post(f"{self.api.base}/webhooks/email/inbound/{key}",
                             data=raw.encode(), headers={"Content-Type": "message/rfc822"}, timeout=30)
        if resp.status_code >= 300:
            raise RuntimeError(f"inbound webhook answered {resp.status_code}: {resp.text[:300]}")
        comm = resp.json()
        self.say(f"{replier} replied to '{original['subject']}'; it became a {comm.get('kind')} "
                 f"communication {comm.get('communication_id')} in thread {comm.get('thread_id')}")
        sent = items(self.api.get("/communications", params={"run_id": self.state["run"]["id"],
                                                              "direction": "outbound"}))
        original_thread = next((c.get("thread_id") for c in sent
                                if c.get("message_id") == original["message_id"]), None)
        self.say("it joined the thread of the message it answers: "
                 + ("yes" if original_thread == comm.get("thread_id") else
                    f"NO (that message is in thread {original_thread})"))
        self.state["reply"] = comm

    def inbound_key(self):
        """The secret key at the end of the organization's inbound webhook URL."""
        url = ((self.api.get("/settings/email") or {}).get("inbound") or {}).get("webhook_url")
        if not url:
            raise RuntimeError("the email settings show no inbound webhook URL")
        return url.rstrip("/").rsplit("/", 1)[-1]

    def look(self):
        """Feed, thread, run counts, analytics"""
        self.step(10, "Look: the communications feed, the thread, the run's counts and analytics")
        s = self.state
        feed = items(self.api.get("/communications", params={
            "channel": "email", "campaign_id": s["campaign"]["id"], "run_id": s["run"]["id"]}))
        inbound = items(self.api.get("/communications", params={
            "channel": "email", "direction": "inbound", "run_id": s["run"]["id"]}))
        self.say(f"communications of the live run: {len(feed)} (email); inbound among them: {len(inbound)}")
        thread = self.api.get(f"/threads/{s['reply']['thread_id']}")
        messages = thread.get("messages") or []
        self.say(f"thread {thread.get('id')}: " + " -> ".join(
            f"{m.get('direction')} '{m.get('subject')}'" for m in messages))
        run = self.wait("the run's reply count", lambda: self.api.get(f"/runs/{s['run']['id']}"),
                        lambda r: r["counts"].get("replied", 0) >= 1, timeout=30)
        self.say("run counts: " + ", ".join(f"{k} {v}" for k, v in run["counts"].items()))
        analytics = self.wait(
            "analytics", lambda: self.api.get("/analytics", params={"campaign_id": s["campaign"]["id"]}),
            lambda a: a["totals"].get("replied", 0) >= 1, timeout=30)
        totals = analytics["totals"]
        self.say("analytics (live only, from events): " + ", ".join(
            f"{k} {totals[k]}" for k in ("targeted", "skipped", "drafted", "approved", "rejected",
                                         "sent", "failed", "replied")))
        with_test = self.api.get("/analytics", params={"campaign_id": s["campaign"]["id"],
                                                        "include_test": "true"})["totals"]
        self.say(f"with the test run included: sent {with_test['sent']}, drafted {with_test['drafted']}")

    # Each step and the steps it needs: a failed step stops only the steps that need it.
    STEPS = (
        ("sign_up", ()), ("import_contacts", (1,)), ("tag_and_segment", (2,)),
        ("email_setup", (1,)), ("campaign", (1,)), ("preflight", (3, 5)),
        ("test_run", (4, 6)), ("live_run", (4, 6)), ("reply", (8,)), ("look", (8, 9)),
    )

    def run(self):
        print(f"Demo against {self.where['GATEWAY_URL']} (mail sink {self.where['SINK_URL']})")
        failed, skipped = [], []
        for number, (name, needs) in enumerate(self.STEPS, 1):
            missing = [n for n in needs if n not in self.done]
            if missing:
                skipped.append(number)
                title = (getattr(self, name).__doc__ or name).strip().splitlines()[0]
                print(f"\n{number}. (skipped: needs step {', '.join(map(str, missing))}) {title}")
                continue
            try:
                getattr(self, name)()
            except Exception as err:
                print(f"   FAILED: {type(err).__name__}: {err}")
                failed.append(number)
                continue
            self.done.append(number)
        print()
        if not failed and not skipped:
            print("All ten steps worked end to end.")
            return 0
        print(f"Steps that worked: {', '.join(map(str, self.done)) or 'none'}; failed: "
              f"{', '.join(map(str, failed)) or 'none'}; skipped: {', '.join(map(str, skipped)) or 'none'}.")
        return 1


def main():
    where = settings()
    try:
        requests.get(where["GATEWAY_URL"] + "/health", timeout=5).raise_for_status()
    except requests.RequestException:
        sys.exit(f"No gateway answers at {where['GATEWAY_URL']}: start the stack with `make run` "
                 "first (or set GATEWAY_URL).")
    sys.exit(Demo(where).run())


if __name__ == "__main__":
    main()
