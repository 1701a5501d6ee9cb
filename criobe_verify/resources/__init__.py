"""Resources: what a check asks about the stack, as typed facts, and how each can be wrong.

A fixture hands a check a resource; the resource reads the stack (an API, a container, a
probe answer), parses each answer once into a frozen fact, and owns one `why_…` method per
way the fact can be wrong, returning a Diagnosis. A check reads as its intent:

    about = cvat.about()
    expect(about.version == profile.cvat_version, lambda: cvat.why_version_differs(about))
"""
