"""Blueprints, one per area."""


def register_blueprints(app) -> None:
    """Register every blueprint of the app."""
    from app.routes import (
        api,
        auth,
        counter,
        customers,
        dashboard,
        followups,
        health,
        home,
        messages,
        plans,
        settings,
        webhooks,
    )

    for module in (
        auth,
        home,
        followups,
        customers,
        counter,
        plans,
        dashboard,
        settings,
        health,
        api,
        messages,
        webhooks,
    ):
        app.register_blueprint(module.bp)

    from app.routes import loyalty, portal

    for module in (loyalty, portal):
        app.register_blueprint(module.bp)

    from app.routes import tokens_ui

    app.register_blueprint(tokens_ui.bp)

    from app.routes import reports, tags, team

    for module in (team, tags, reports):
        app.register_blueprint(module.bp)

    from app.routes import exports, imports

    for module in (imports, exports):
        app.register_blueprint(module.bp)

    from app.routes import message_templates

    app.register_blueprint(message_templates.bp)
