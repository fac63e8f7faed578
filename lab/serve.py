"""`lab serve RUN`: a small local web page where participants play against a trained agent (Flask).

A participant reads the instructions, gives their consent and a name or code, picks a role, and
plays `rounds` rounds. Each participant's rounds are a `lab.play.Sitting`, the one the terminal
drives, so the page checks answers and records rounds exactly as `lab play` does (the same CSV
table, RUN/play/games.csv by default). The sittings live in the server's memory: a page reloaded
mid-sitting continues it; a restarted server starts new ones (the rounds already played are kept).
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from flask import Flask, abort, redirect, render_template_string, request, url_for

from lab.play import ROLES, Feedback, Partner, Record, Sitting

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
 .word { font-family: monospace; font-size: 1.6rem; letter-spacing: .15rem; }
 .object { font-family: monospace; font-size: 1.3rem; }
 .error { color: #a00; } .feedback { background: #eef; padding: .5rem 1rem; }
 button, input, select { font-size: 1.1rem; } label { margin-right: 1rem; }
</style></head><body>
{{ body | safe }}
</body></html>"""

CONSENT = """
<h1>A communication game</h1>
<p>In this game you play with a computer partner that has learned its own little language. Each round one
player, the <b>speaker</b>, sees an object and sends a short message made of letters; the other, the
<b>listener</b>, reads the message and says which object the speaker saw.</p>
<p>{{ world }}</p>
<p>You will play {{ rounds }} rounds. There are no wrong ways to play: do what seems best to you.</p>
<h2>What is recorded</h2>
<p>For every round we record the name or code you give below, your role, the object, the message, the
answer, whether it was right and how many seconds you took. Nothing else is recorded. The records stay on
this computer, in {{ record }}. You may stop at any time; the rounds you played are kept.</p>
<form method="post" action="{{ url_for('start') }}">
 <p><label><input type="checkbox" name="consent" value="yes" id="consent"> I have read the above and agree to take part.</label></p>
 <p><label for="participant">Your name or code:</label> <input name="participant" id="participant" required maxlength="40" value="{{ participant }}"></p>
 <p>Your role:
 {% for role in roles %}<label><input type="radio" name="role" value="{{ role }}" id="role-{{ role }}"
   {% if loop.first %}checked{% endif %}> {{ role }}</label>{% endfor %}</p>
 {% if error %}<p class="error">{{ error }}</p>{% endif %}
 <p><button type="submit" id="start">Start</button></p>
</form>"""

ROUND = """
<h1>You are the {{ sitting.role }}</h1>
<p>{% if sitting.role == 'speaker' %}Write a message that lets your partner find the object.
{% elif view.candidates %}Choose the object you think the speaker saw.
{% else %}Choose the value of each attribute of the object you think the speaker saw; you get credit for every
attribute you get right.{% endif %}</p>
{% if feedback %}<p class="feedback" id="feedback">Last round: {{ feedback }}</p>{% endif %}
<h2>Round {{ view.round }} of {{ view.rounds }}</h2>
<form method="post" action="{{ url_for('play', token=token) }}">
{% if sitting.role == 'speaker' %}
 <p>The object: <span class="object" id="object">{{ view.object }}</span></p>
 <p><label for="answer">Your message (letters {{ letters }}, at most {{ sitting.max_len }}):</label>
 <input name="answer" id="answer" autocomplete="off" autofocus></p>
{% else %}
 <p>The speaker says: <span class="word" id="message">{{ view.message }}</span></p>
 {% if view.candidates %}
  {% for c in view.candidates %}<p><label><input type="radio" name="answer" value="{{ loop.index }}" id="candidate-{{ loop.index }}">
   {{ loop.index }}: <span class="object">{{ c }}</span></label></p>{% endfor %}
 {% else %}
  <p>{% for k in range(sitting.n_attributes) %}<label>attribute {{ k + 1 }}
   <select name="value" id="attribute-{{ k + 1 }}">{% for v in range(sitting.n_values) %}<option>{{ v }}</option>{% endfor %}</select>
  </label>{% endfor %}</p>
 {% endif %}
{% endif %}
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<p><button type="submit" id="send">Send</button></p>
</form>"""

DONE = """
<h1>Thank you</h1>
{% if feedback %}<p class="feedback" id="feedback">Last round: {{ feedback }}</p>{% endif %}
<p id="summary">{{ summary }}</p>
<p>Your rounds are recorded. <a href="{{ url_for('consent') }}">Play again</a></p>"""


def make_app(partner: Partner, record: Record, rounds: int = 10, roles: tuple[str, ...] = ROLES) -> Flask:
    """The web app: `/` instructions and consent, `/start` opens a sitting, `/play/<token>` its rounds."""
    app = Flask(__name__)
    sittings: dict[str, Sitting] = {}
    said: dict[str, tuple[str, str]] = {}  # a sitting's last feedback or error, shown once by the next page
    lock = threading.Lock()  # one move at a time: the sittings share the partner's compiled functions
    g = partner.game
    world = (f"Objects have {g.n_attributes} attributes (numbered 1 to {g.n_attributes}), each with a value from 0 to "
             f"{g.n_values - 1}; an object is written as its values, attribute 1 first.")

    def page(title: str, body: str, **context) -> str:
        return render_template_string(PAGE, title=title, body=render_template_string(body, **context))

    @app.get("/")
    def consent(error: str | None = None):
        return page("A communication game", CONSENT, world=world, rounds=rounds, record=record.path, roles=roles, error=error,
                    participant=request.form.get("participant", "")[:40])

    @app.post("/start")
    def start():
        if request.form.get("consent") != "yes":
            return consent("Please tick the box to agree before you start.")
        participant = request.form.get("participant", "").strip()[:40]
        role = request.form.get("role", roles[0])
        if not participant or role not in roles:
            return consent("Please give a name or code and choose a role.")
        with lock:
            token = secrets.token_urlsafe(12)
            sittings[token] = Sitting(partner, role, rounds, record, participant)
        return redirect(url_for("play", token=token))

    @app.route("/play/<token>", methods=["GET", "POST"])
    def play(token: str):
        sitting = sittings.get(token) or abort(404)
        if request.method == "POST":  # play the move, then show the next round by a GET: a reload replays nothing
            values = request.form.getlist("value")
            with lock:
                outcome = sitting.answer(" ".join(values) if values else request.form.get("answer", ""))
            said[token] = ("feedback", outcome.text) if isinstance(outcome, Feedback) else ("error", outcome)
            return redirect(url_for("play", token=token))
        kind, text = said.pop(token, (None, None))
        feedback, error = (text, None) if kind == "feedback" else (None, text)
        if sitting.over:
            return page("Thank you", DONE, feedback=feedback, summary=sitting.summary())
        letters = f"a-{chr(ord('a') + sitting.vocab_size - 2)}"
        return page(f"Round {sitting.round}", ROUND, sitting=sitting, view=sitting.show(), token=token, feedback=feedback,
                    error=error, letters=letters)

    return app


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, rounds: int = 10, index: int = 0,
          record: str | Path | None = None, role: str | None = None) -> None:
    """Serve the page until interrupted (Werkzeug's server: for a classroom on one machine or a local network)."""
    from lab.experiment.config import ConfigError
    from lab.play import RECORD_FILE

    if rounds < 1:
        raise ConfigError(f"--rounds {rounds}: play at least 1 round")
    partner = Partner.of_run(run_dir, index)
    app = make_app(partner, Record(record or Path(run_dir) / RECORD_FILE), rounds, (role,) if role else ROLES)
    print(f"lab serve: open http://{host}:{port}/ in a browser; rounds are recorded in {record or Path(run_dir) / RECORD_FILE}; "
          f"Ctrl-C stops the server")
    app.run(host=host, port=port, threaded=True)
