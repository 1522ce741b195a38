"""Root URLconf: the Pachyderm storage routes, then all of Label Studio's.

Two layouts, same views:
* the routes Label Studio's frontend and SDK call for any provider
  (``api/storages/pachyderm/...`` import, ``api/storages/export/pachyderm...`` export);
* an explicit layout ``api/storages/pachyderm/{import,export}/...``.
Ours come first so Label Studio's unanchored patterns cannot capture them.
"""
import os

from django.urls import include, path, re_path
from django.views.static import serve

from . import api, labeling, task_list
from .media import proxy

# Label Studio serves /static/ from its own collected files only; the plugin's browser
# script and icon are served from the package, so `pip install` is all it takes.
_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static', 'label_studio_pachyderm')

_import = {
    'list': api.PachydermImportStorageListAPI.as_view(),
    'detail': api.PachydermImportStorageDetailAPI.as_view(),
    'sync': api.PachydermImportStorageSyncAPI.as_view(),
    'validate': api.PachydermImportStorageValidateAPI.as_view(),
    'form': api.PachydermImportStorageFormLayoutAPI.as_view(),
    'files': api.PachydermImportStorageFilesAPI.as_view(),
}
_export = {
    'list': api.PachydermExportStorageListAPI.as_view(),
    'detail': api.PachydermExportStorageDetailAPI.as_view(),
    'sync': api.PachydermExportStorageSyncAPI.as_view(),
    'validate': api.PachydermExportStorageValidateAPI.as_view(),
    'form': api.PachydermExportStorageFormLayoutAPI.as_view(),
    'promote': api.PachydermExportStoragePromoteAPI.as_view(),
    'rounds': api.PachydermExportStorageRoundsAPI.as_view(),
}

app_name = 'pachyderm'

storage_patterns = [
    # Explicit layout (registered first: "import/" must not be read as a storage id route).
    path('pachyderm/import/', _import['list'], name='import-list'),
    path('pachyderm/import/validate/', _import['validate'], name='import-validate'),
    path('pachyderm/import/form-layout/', _import['form'], name='import-form-layout'),
    path('pachyderm/import/files/', _import['files'], name='import-files'),
    path('pachyderm/import/<int:pk>/', _import['detail'], name='import-detail'),
    path('pachyderm/import/<int:pk>/sync/', _import['sync'], name='import-sync'),
    path('pachyderm/export/', _export['list'], name='export-list'),
    path('pachyderm/export/validate/', _export['validate'], name='export-validate'),
    path('pachyderm/export/form-layout/', _export['form'], name='export-form-layout'),
    path('pachyderm/export/<int:pk>/', _export['detail'], name='export-detail'),
    path('pachyderm/export/<int:pk>/sync/', _export['sync'], name='export-sync'),
    path('pachyderm/export/<int:pk>/promote/', _export['promote'], name='export-promote'),
    path('pachyderm/export/<int:pk>/rounds/', _export['rounds'], name='export-rounds'),
    # The layout Label Studio's frontend uses for every provider.
    path('pachyderm/', _import['list'], name='storage-pachyderm-list'),
    path('pachyderm/<int:pk>', _import['detail'], name='storage-pachyderm-detail'),
    path('pachyderm/<int:pk>/sync', _import['sync'], name='storage-pachyderm-sync'),
    path('pachyderm/validate', _import['validate'], name='storage-pachyderm-validate'),
    path('pachyderm/form', _import['form'], name='storage-pachyderm-form'),
    path('pachyderm/files', _import['files'], name='storage-pachyderm-list-files'),
    path('export/pachyderm', _export['list'], name='export-storage-pachyderm-list'),
    path('export/pachyderm/<int:pk>', _export['detail'], name='export-storage-pachyderm-detail'),
    path('export/pachyderm/<int:pk>/sync', _export['sync'], name='export-storage-pachyderm-sync'),
    path('export/pachyderm/<int:pk>/promote', _export['promote'], name='export-storage-pachyderm-promote'),
    path('export/pachyderm/<int:pk>/rounds', _export['rounds'], name='export-storage-pachyderm-rounds'),
    path('export/pachyderm/validate', _export['validate'], name='export-storage-pachyderm-validate'),
    path('export/pachyderm/form', _export['form'], name='export-storage-pachyderm-form'),
]

urlpatterns = [
    re_path(r'^static/label_studio_pachyderm/(?P<path>[\w.-]+)$', serve, {'document_root': _STATIC_DIR}),
    path('api/storages/', include((storage_patterns, app_name))),
    # Label Studio's storage proxy routes (same paths, same names via core.urls), with the
    # plugin's organization check for pfs:// URIs.
    path('tasks/<int:task_id>/resolve/', proxy.TaskResolvePachydermAware.as_view()),
    path('projects/<int:project_id>/resolve/', proxy.ProjectResolvePachydermAware.as_view()),
    path('tasks/<int:task_id>/presign/', proxy.TaskResolvePachydermAware.as_view()),
    path('projects/<int:project_id>/presign/', proxy.ProjectResolvePachydermAware.as_view()),
    # Label Studio's labeling queue, same path, serving current task versions only.
    path('api/projects/<int:pk>/next/', labeling.CurrentVersionsNextTaskAPI.as_view()),
    # Label Studio's task list, same path, with the Pachyderm version column's cells filled.
    path('api/tasks/', task_list.VersionedTaskListAPI.as_view()),
    path('', include('core.urls')),
]
