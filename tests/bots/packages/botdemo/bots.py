"""Bots for the two demos (bots-solo, bots-colors): what a lab would write to check that
the pages show what the design says and to give answers the analysis can recognise."""

from bots import expect

COLOUR_WORDS = {"crimson", "turquoise", "amber"}


def consent(screen):
    expect(screen.handler == "form_consent", f"consent is shown by form_consent, not {screen.handler}")
    return {"agree": screen.questions["agree"].choices[0]}


def survey(screen):
    expect(set(screen.questions) >= {"hand", "instruments", "alertness"}, "the survey shows its questions")
    return {"hand": "Left", "instruments": ["Piano", "Voice"], "listening": "Live", "training_years": 3,
            "alertness": 7, "favourite_genre": f"bot {screen.bot}", "comments": "line one\nline two"}  # fmt: skip


def word_trial(screen):
    trials = screen.trials()
    expect(len(trials) == 1, f"one word trial per visit, not {len(trials)}")
    word = trials[0]["word"]
    trials[0]["response"] = "f" if word in COLOUR_WORDS else "j"
    expect(screen.answers_to("survey"), "the survey was answered before the trials")
    return {"_jspsych": trials, "confidence": screen.visit + 1}


def colour_trial(screen):
    shared = screen.shared_params
    expect(shared.get("colour"), "the step's colour is in the shared parameters")
    expect(screen.timeline[0]["data"]["colour"] == shared["colour"], "the swatch shows the shared colour")
    return {"warmth": 7 if shared.get("palette") in ("start", "warm") else 1}
