"""People play against a trained agent: `lab play` in the terminal and `lab serve` in a browser; every round is recorded.

One tiny run for the module; the terminal sittings are scripted over stdin through `lab.cli.main`.
"""

import io
import shutil
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from lab import cli, config
from lab.experiment.run import run as lab_run
from lab.play import COLUMNS

OVERRIDES = ["game.n_attributes=2", "game.n_values=3", "agents.vocab_size=8", "agents.max_len=3", "agents.hidden_size=32",
             "agents.embedding_size=16", "train.steps=200", "train.eval_every=100", "train.seeds=2", "train.lr=0.005",
             "train.batch_size=64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    lab_run(config.load(overrides=OVERRIDES), out, progress=False)
    return out


def sitting(monkeypatch, capsys, args: list[str], lines: list[str]) -> tuple[int, str, str]:
    """`lab play ARGS` with `lines` typed on stdin: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code = cli.main(["play", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_scripted_listener_sitting_is_recorded_as_a_tidy_table(run_dir, monkeypatch, capsys):
    code, out, _ = sitting(monkeypatch, capsys, [str(run_dir), "--role", "listener", "--rounds", "3", "--seed", "4",
                                                 "--participant", "ana"],
                           ["red circle", "1", "", "1 7", "1 2", "0 0", "2 2"])
    assert code == 0
    assert "You are the LISTENER" in out and "2 attributes (numbered 1 to 2)" in out and "from 0 to 2" in out
    assert "letters from a-g" in out and "1 to 3 letters" in out
    # plain-language errors; nothing padded, nothing played for them
    assert "'red' is not a value" in out and "you typed 1 value; an object has 2" in out
    assert "an empty line is not an answer" in out and "attribute 2 has no value 7" in out
    assert "of 2 attributes right" in out
    table = pd.read_csv(run_dir / "play" / "games.csv")
    assert list(table.columns) == COLUMNS
    assert len(table) == 3 and (table["participant"] == "ana").all() and (table["role"] == "listener").all()
    assert table["round"].tolist() == [1, 2, 3] and table["sitting"].nunique() == 1
    assert table["guess"].tolist() == ["1 2", "0 0", "2 2"]
    for target, guess, reward in zip(table["target"], table["guess"], table["reward"]):  # the game's reward: attributes right
        assert reward == pytest.approx(np.mean(np.array(target.split()) == np.array(guess.split())))
    assert (table["seconds"] >= 0).all() and set(table["held_out"]) <= {True, False}


def test_a_second_sitting_appends_and_keeps_the_first(run_dir, monkeypatch, capsys, tmp_path):
    record = tmp_path / "class" / "games.csv"
    sitting(monkeypatch, capsys, [str(run_dir), "--rounds", "2", "--participant", "a", "--record", str(record)], ["0 0", "1 1"])
    first = pd.read_csv(record)
    code, out, _ = sitting(monkeypatch, capsys, [str(run_dir), "--role", "speaker", "--rounds", "2", "--participant", "b",
                                                 "--record", str(record)], ["zz", "abcd", "ab", "c"])
    assert code == 0
    assert "You are the SPEAKER" in out and "'z' is not one of the symbols" in out and "at most 3" in out
    both = pd.read_csv(record)
    assert len(both) == 4 and both.iloc[:2].equals(first)
    assert both["sitting"].nunique() == 2 and both["message"].iloc[2:].tolist() == ["ab", "c"]
    assert both["role"].tolist() == ["listener", "listener", "speaker", "speaker"]


def test_the_seed_replays_the_targets_and_sittings_differ_without_it(run_dir, monkeypatch, capsys, tmp_path):
    targets = []
    for i, seed in enumerate(["--seed=11", "--seed=11", None]):
        record = tmp_path / f"{i}.csv"
        args = [str(run_dir), "--rounds", "8", "--record", str(record)] + ([seed] if seed else [])
        sitting(monkeypatch, capsys, args, ["0 0"] * 8)
        targets.append(pd.read_csv(record)["target"].tolist())
    assert targets[0] == targets[1]
    assert targets[2] != targets[0]  # 9 objects, 8 rounds: a new order has a chance of 9^-8 to repeat one


def test_quitting_keeps_the_rounds_played(run_dir, monkeypatch, capsys, tmp_path):
    record = tmp_path / "games.csv"
    code, out, _ = sitting(monkeypatch, capsys, [str(run_dir), "--rounds", "5", "--record", str(record)], ["0 1", "quit"])
    assert code == 0 and "stopped" in out and "over 1 rounds" in out
    assert len(pd.read_csv(record)) == 1


def test_a_record_holding_another_table_is_refused(run_dir, monkeypatch, capsys, tmp_path):
    record = tmp_path / "mine.csv"
    record.write_text("a,b\n1,2\n")
    code, _, err = sitting(monkeypatch, capsys, [str(run_dir), "--record", str(record)], ["0 0"])
    assert code == 2 and err.count("\n") == 1 and "holds another table" in err
    assert record.read_text() == "a,b\n1,2\n"
    code, _, err = sitting(monkeypatch, capsys, [str(run_dir), "--role", "judge"], [])
    assert code == 2 and "allowed values are speaker, listener" in err


# -- the web page ------------------------------------------------------------------------------------


@pytest.fixture()
def server(run_dir, tmp_path):
    """`lab serve`'s app on a free local port, in a thread: (base url, record path)."""
    from werkzeug.serving import make_server

    from lab.play import Partner, Record
    from lab.serve import make_app

    record = tmp_path / "web.csv"
    app = make_app(Partner.of_run(run_dir), Record(record), rounds=3)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", record
    httpd.shutdown()
    thread.join()


@pytest.fixture()
def browser(tmp_path):
    """Headless Chromium through Selenium; skipped where there is none (`.ci/run` installs Debian's chromium)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("no headless browser here: apt-get install chromium chromium-driver (as .ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_a_participant_plays_three_rounds_in_a_browser_and_they_are_recorded(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def shows(text: str) -> None:  # a click returns before the next page is in: wait for it
        WebDriverWait(browser, 30).until(lambda driver: text in driver.page_source)

    url, record = server
    browser.get(url)
    assert "What is recorded" in browser.page_source
    browser.find_element(By.ID, "participant").send_keys("web-1")
    browser.find_element(By.ID, "start").click()  # no consent yet: refused, nothing started
    shows("tick the box")
    assert not record.exists()
    browser.find_element(By.ID, "consent").click()
    browser.find_element(By.ID, "role-listener").click()
    browser.find_element(By.ID, "start").click()
    guesses, messages = ["1 2", "0 0", "2 1"], []
    for round_, guess in enumerate(guesses, 1):
        shows(f"Round {round_} of 3")
        messages.append(browser.find_element(By.ID, "message").text)
        for k, value in enumerate(guess.split(), 1):
            Select(browser.find_element(By.ID, f"attribute-{k}")).select_by_visible_text(value)
        browser.find_element(By.ID, "send").click()
        shows("attributes right")
    shows("Thank you")
    browser.refresh()  # a reload replays nothing
    table = pd.read_csv(record)
    assert list(table.columns) == COLUMNS and len(table) == 3
    assert (table["participant"] == "web-1").all() and (table["role"] == "listener").all()
    assert table["guess"].tolist() == guesses and table["message"].tolist() == messages
    assert table["round"].tolist() == [1, 2, 3]


def test_the_page_speaks_plainly_to_a_speaker(server, run_dir):
    from lab.play import Partner, Record
    from lab.serve import make_app

    url, record = server
    client = make_app(Partner.of_run(run_dir), Record(record), rounds=1).test_client()
    started = client.post("/start", data={"participant": "s", "role": "speaker", "consent": "yes"})
    page = client.post(started.location, data={"answer": "xyz"}, follow_redirects=True).get_data(as_text=True)
    assert "is not one of the symbols" in page and not record.exists()
    page = client.post(started.location, data={"answer": "ab"}, follow_redirects=True).get_data(as_text=True)
    assert "Thank you" in page and "the listener understood" in page
    assert pd.read_csv(record)["message"].tolist() == ["ab"]


def test_a_hand_made_language_is_a_partner_too(tmp_path):
    """Learnability experiments play hand-made languages: it speaks by lookup and reads the closest word."""
    import games
    from games import languages
    from lab.play import Partner, Record, Sitting

    objects = games.all_objects(2, 3)
    partner = Partner.of_language(objects, languages.compositional(objects, 3), 3, held_out=[4], name="the compositional code")
    record = Record(tmp_path / "games.csv")
    listener = Sitting(partner, "listener", 4, record, "p", seed=0)
    for _ in range(4):
        word = listener.show()["message"]
        listener.answer(f"{ord(word[0]) - ord('a')} {ord(word[1]) - ord('d')}")  # read the code: a-c attribute 1, d-f attribute 2
    assert listener.scores == [1.0] * 4
    speaker = Sitting(partner, "speaker", 2, record, "p", seed=0)
    first = speaker.show()["object"]
    outcome = speaker.answer("a" + "def"[int(first.split()[1])])  # attribute 1 said wrong on purpose unless it is 0
    assert outcome.reward == (1.0 if first.split()[0] == "0" else 0.5)
    assert "the listener understood" in outcome.text
    assert "e" in partner.hint() and "the compositional code" in listener.intro()
    table = pd.read_csv(record.path)
    assert len(table) == 5 and set(table["run"]) == {"the compositional code"} and table["partner_seed"].isna().all()
