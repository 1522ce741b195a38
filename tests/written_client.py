"""An API client whose requests return once this process's export writer has done what is due.

A submit returns before its export is written (the process's writer thread writes it).
Most tests read the repository right after a request, as a user would a moment later;
they use this client. Retries waiting out a back-off are not waited for. Tests of the
request alone (how long a submit takes, what it returns while pachd is frozen) use
Label Studio's plain ``APIClient``.
"""
from rest_framework.test import APIClient


class WrittenAPIClient(APIClient):
    def request(self, **kwargs):
        from label_studio_pachyderm.exports import outbox

        response = super().request(**kwargs)
        assert outbox.wait_until_written(timeout=120), 'the export writer did not finish within 120 s'
        return response
