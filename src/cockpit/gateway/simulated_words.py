"""The vocabulary of the simulated provider's prose."""

_OPENERS = (
    "In practice,", "In most cases,", "As a general rule,", "For example,", "On the other hand,",
    "At the same time,", "Over time,", "In many teams,", "Put simply,", "More importantly,",
    "Because of this,", "As a result,", "Even so,", "In the long run,", "To start with,",
    "Beyond that,", "In a typical setup,", "From experience,", "With that in mind,", "Equally,",
    "In short,", "For that reason,", "By contrast,", "Later on,", "In the meantime,", "Ideally,",
    "Where possible,", "Generally speaking,", "Most of the time,", "In the end,",
)  # fmt: skip

_SUBJECTS = (
    "the simplest approach", "a careful plan", "a small experiment", "the main difference",
    "the first step", "a clear structure", "good documentation", "regular feedback",
    "the underlying idea", "a well chosen default", "the team", "a typical user", "a growing organisation",
    "an experienced reviewer", "a short checklist", "the overall design", "a reliable process",
    "this kind of change", "the right tool", "a shared vocabulary", "each decision", "a modest budget",
    "a consistent routine", "the final result", "a practical example", "careful measurement",
    "an honest estimate", "the next iteration", "a gradual rollout", "a second opinion",
    "the current setup", "a quick prototype", "the key constraint", "a simple rule of thumb",
    "clear communication", "steady progress", "a balanced view", "the most common mistake",
    "a thoughtful review", "a realistic schedule", "a good starting point", "the usual workflow",
)  # fmt: skip

_VERBS = (
    "tends to improve", "usually depends on", "can simplify", "often reveals", "helps to clarify",
    "makes it easier to understand", "should account for", "will often shape", "rarely replaces",
    "gradually changes", "directly affects", "is closely tied to", "can quickly highlight", "supports",
    "strengthens", "reduces the risk around", "draws attention to", "builds confidence in",
    "puts more weight on", "leaves room for", "works best alongside", "tends to reinforce",
    "brings more clarity to", "depends heavily on", "is worth comparing with", "sets clear expectations for",
    "protects", "keeps the focus on", "adds useful context to", "helps explain", "often benefits from",
    "can lower the cost of", "shortens the path to", "provides a baseline for", "makes room for",
    "naturally leads to", "speeds up", "sheds light on", "lays the groundwork for", "improves",
)  # fmt: skip

_OBJECTS = (
    "the quality of the outcome", "the way decisions are made", "the overall timeline",
    "the people involved", "the long term plan", "everyday work", "the most important details",
    "the available options", "the expected results", "later improvements", "the original goal",
    "avoidable mistakes", "the balance between speed and care", "the structure of the project",
    "common edge cases", "the final decision", "how the pieces fit together", "the trade-offs involved",
    "the wider context", "the needs of the users", "the practical limits", "future maintenance",
    "the level of detail required", "the shared understanding of the problem", "the pace of change",
    "the risks that matter most", "the questions that remain open", "small but useful changes",
    "the reliability of the system", "a smoother experience", "the main priorities",
    "the next set of steps", "the assumptions behind the plan", "the choices that follow",
    "a more predictable schedule", "the data you already have", "the effort required",
    "the resources at hand", "the clarity of the message", "the existing workflow",
    "the lessons from earlier attempts", "the most likely outcome", "the broader strategy",
    "the habits of the team", "a fair comparison", "the value delivered", "the feedback you receive",
    "the overall direction", "each following stage", "the final review",
)  # fmt: skip

_TAILS = (
    "over time", "in most situations", "when the goals are clear", "without adding much complexity",
    "as the work grows", "for everyone involved", "in a measurable way", "before any major change",
    "across different settings", "once the basics are in place", "with relatively little effort",
    "in the early stages", "when time is limited", "as long as the scope stays small",
    "even under pressure", "from one week to the next", "in day to day work",
    "when it is reviewed regularly", "at a reasonable cost", "without surprising anyone",
    "when priorities shift", "in ways that are easy to explain", "for the foreseeable future",
    "as new information arrives", "throughout the process", "in both small and large projects",
    "after a few iterations", "with a bit of patience", "in a fairly predictable way",
)  # fmt: skip

_CONDITIONS = (
    "the goals are clear", "the team agrees on the priorities", "the budget is limited",
    "the requirements change", "the timeline is tight", "you start small",
    "the results are measured carefully", "several people share the work", "the stakes are high",
    "the problem is new", "there is enough time to review", "the first attempt falls short",
)  # fmt: skip

_FRAMES = (
    "It is worth noting that {clause}.",
    "One useful observation is that {clause}.",
    "This is why {clause}.",
    "Keep in mind that {clause}.",
    "Many people find that {clause}.",
    "It often turns out that {clause}.",
)

_QUESTION_FRAMES = (
    "When it comes to {topic}, a few points are worth keeping in mind.",
    "Here is a practical way to think about {topic}.",
    "Your question about {topic} is a good one, and it helps to look at it step by step.",
    "There are several useful ways to approach {topic}, so here is a short overview.",
)

_CLOSERS = (
    "I hope this gives you a useful place to start.",
    "Feel free to ask if you would like more detail on any of these points.",
    "Taken together, these points should make the next step easier to plan.",
    "In the end, the best choice depends on your own goals and constraints.",
)
