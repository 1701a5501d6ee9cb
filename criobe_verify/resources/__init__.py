"""Resources: one module per thing the stack has. A resource reads its facts once (typed,
frozen) and owns the diagnosis of each way it can be wrong, so a check reads as intent:

    c = containers["cvat_ui"]
    expect(c.state.running, c.why_not_running)
"""
