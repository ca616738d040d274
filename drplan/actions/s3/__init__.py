"""Amazon S3: put the objects under a prefix back to their versions at a point in time.

:mod:`.restore` holds the action, :mod:`.versions` the S3 calls at the level of object versions.
"""

from drplan.actions.s3.restore import RestoreVersions

ACTIONS = (RestoreVersions,)
