def get_company(db, company_id):
    """Return the profile of one company.

    Raises ToolError when no company has the given id.
    """
    company = db["companies"].get(company_id)
    if company is None:
        raise ToolError(f"No company found with id '{company_id}'.")
    return {
        "company_id": company_id,
        "name": company.get("name"),
        "industry": company.get("industry"),
        "city": company.get("city"),
    }
