"""The GET_STORAGE_LIST hook: Label Studio's providers plus Pachyderm."""


def get_storage_list():
    # A new list on every call: Label Studio extends the returned list in place.
    from io_storages.functions import get_storage_list as label_studio_storages

    from .api import PachydermExportStorageListAPI, PachydermImportStorageListAPI

    return [
        *label_studio_storages(),
        {
            'name': 'pachyderm',
            'title': 'Pachyderm',
            'import_list_api': PachydermImportStorageListAPI,
            'export_list_api': PachydermExportStorageListAPI,
        },
    ]
