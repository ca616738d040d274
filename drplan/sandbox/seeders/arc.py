"""No seeder for ``aws.arc.set_routing_control``: moto emulates no Route 53 Application Recovery
Controller (neither clusters and routing controls nor their cluster endpoints), so the sandbox has
nothing to seed and nowhere to send the step's calls.

A sandbox drill skips the step as any drill does (it would move production traffic) unless the plan
gives ``drill_with``; with ``drill_with`` the step fails there, saying that the emulator does not
answer. Its tests use botocore's Stubber instead (tests/test_action_arc.py).
"""
