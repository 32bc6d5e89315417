from firmware import plugins
from firmware.licensing import activate, remove


def test_installed_softpaks_have_manifests():
    manifests = plugins.installed_softpaks()
    assert "mailserver" in manifests
    mailserver = manifests["mailserver"]
    assert mailserver.name == "Mail Server" and mailserver.version
    assert "Stand-Alone" in mailserver.description
    # A SoftPak ships when it has content: each one adds something.
    for manifest in manifests.values():
        assert manifest.adds, manifest.id


def test_only_licensed_softpaks_are_loaded(vendor, store):
    assert plugins.active_plugin_manager(store).list_name_plugin() == []
    lic = activate(store, vendor.issue(mailserver=None)).license
    manager = plugins.active_plugin_manager(store)
    assert [name for name, _ in manager.list_name_plugin()] == ["mailserver"]
    pages = [p for batch in manager.hook.gatebox_menu_pages() for p in batch]
    assert pages and pages[0]["softpak"] == "mailserver"
    remove(store, lic.id)
    assert plugins.active_plugin_manager(store).list_name_plugin() == []


def test_active_manager_is_cached_per_generation(vendor, store):
    first = plugins.active_plugin_manager(store)
    assert plugins.active_plugin_manager(store) is first
    store.touch()
    assert plugins.active_plugin_manager(store) is not first


def test_settings_of_unlicensed_softpaks_stay_declared(demo_package):
    assert [s.key for s in demo_package.settings] == ["demo.greeting"]


def test_requires_needs_the_other_softpak_active(demo_package):
    def commands(active):
        manager = demo_package.plugin_manager(active)
        return sorted(c for batch in manager.hook.gatebox_cli_commands() for c in batch)

    assert commands(set()) == []
    assert commands({"addon"}) == []
    assert commands({"demo"}) == ["demo-command"]
    assert commands({"demo", "addon"}) == ["addon-command", "demo-command"]
    assert commands({"demo", "not-installed"}) == ["demo-command"]


def test_softpak_migrations_run_for_installed_softpaks(demo_package, store):
    from firmware.config.migrations import upgrade
    upgrade(store.db, extra=demo_package.migrations())
    upgrade(store.db, extra=demo_package.migrations())  # once only
    assert "demo_things" in store.db.table_names()
    row = store.db.execute("SELECT value FROM meta WHERE key = 'schema_version:demo'").fetchone()
    assert row[0] == "1"


def test_core_softpak_settings_are_cached():
    assert plugins.softpak_settings() is plugins.softpak_settings()


def test_a_broken_manifest_is_skipped(demo_package):
    broken = demo_package.manifests["demo"].path.parent / "broken"
    broken.mkdir()
    (broken / "manifest.toml").write_text('id = "broken"\n')
    fresh = plugins.Registry("demopaks")
    assert set(fresh.manifests) == {"demo", "addon"}
