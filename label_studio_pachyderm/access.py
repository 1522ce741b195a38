"""Who may use a Pachyderm storage: the membership rule of its project's organization."""


def is_project_member(user, project) -> bool:
    """Label Studio OSS allows any user of the instance (it assumes one organization);
    Pachyderm credentials are worth more, so the plugin also requires membership of
    the project's organization."""
    if not project.has_permission(user):
        return False
    return bool(project.organization_id) and project.organization.has_user(user) and not (
        project.organization.has_deleted(user)
    )
