WITHDRAWABLE = ("submitted", "interviewing")


def withdraw_application(db, application_id):
    """Withdraw an application that is still in progress (submitted or interviewing)."""
    application = db["applications"].get(application_id)
    if application is None:
        raise ToolError(f"Application '{application_id}' does not exist.")
    status = application.get("status")
    if status not in WITHDRAWABLE:
        raise ToolError(
            f"Application '{application_id}' is {status}; only submitted or interviewing applications can be withdrawn."
        )
    application["status"] = "withdrawn"
    return {"application_id": application_id, "status": "withdrawn"}
