"""Dataverse option sets (value -> label) used by the emulated tables.

Values are the documented Dynamics 365 Sales values (account/contact/product/quote/order/
invoice entity references) and the P2C solution's values (prospect-to-cash spec §7.2, §6).
State/status pairs are ``(state options, status options, status -> state)``.
"""

from __future__ import annotations

from collections.abc import Mapping

Options = Mapping[int, str]
StateModel = tuple[Options, Options, Mapping[int, int]]

ACTIVE_INACTIVE: StateModel = (
    {0: "Active", 1: "Inactive"},
    {1: "Active", 2: "Inactive"},
    {1: 0, 2: 1},
)

CUSTOMER_TYPE: Options = {
    1: "Competitor",
    2: "Consultant",
    3: "Customer",
    4: "Investor",
    5: "Partner",
    6: "Influencer",
    7: "Press",
    8: "Prospect",
    9: "Reseller",
    10: "Supplier",
    11: "Vendor",
    12: "Other",
}

INDUSTRY: Options = {
    1: "Accounting",
    2: "Agriculture and Non-petrol Natural Resource Extraction",
    3: "Broadcasting Printing and Publishing",
    4: "Brokers",
    5: "Building Supply Retail",
    6: "Business Services",
    7: "Consulting",
    8: "Consumer Services",
    9: "Design, Direction and Creative Management",
    10: "Distributors, Dispatchers and Processors",
    11: "Doctor's Offices and Clinics",
    12: "Durable Manufacturing",
    13: "Eating and Drinking Places",
    14: "Entertainment Retail",
    15: "Equipment Rental and Leasing",
    16: "Financial",
    17: "Food and Tobacco Processing",
    18: "Inbound Capital Intensive Processing",
    19: "Inbound Repair and Services",
    20: "Insurance",
    21: "Legal Services",
    22: "Non-Durable Merchandise Retail",
    23: "Outbound Consumer Service",
    24: "Petrochemical Extraction and Distribution",
    25: "Service Retail",
    26: "SIG Affiliations",
    27: "Social Services",
    28: "Special Outbound Trade Contractors",
    29: "Specialty Realty",
    30: "Transportation",
    31: "Utility Creation and Distribution",
    32: "Vehicle Retail",
    33: "Wholesale",
}

ACCOUNT_CATEGORY: Options = {1: "Preferred Customer", 2: "Standard"}
PAYMENT_TERMS: Options = {1: "Net 30", 2: "2% 10, Net 30", 3: "Net 45", 4: "Net 60"}
SHIPPING_METHOD: Options = {
    1: "Airborne",
    2: "DHL",
    3: "FedEx",
    4: "UPS",
    5: "Postal Mail",
    6: "Full Load",
    7: "Will Call",
}
FREIGHT_TERMS: Options = {1: "FOB", 2: "No Charge"}
GENDER: Options = {1: "Male", 2: "Female"}
ACCOUNT_ROLE: Options = {1: "Decision Maker", 2: "Employee", 3: "Influencer"}
PRODUCT_TYPE: Options = {
    1: "Sales Inventory",
    2: "Miscellaneous Charges",
    3: "Services",
    4: "Flat Fees",
}
PRODUCT_STRUCTURE: Options = {1: "Product", 2: "Product Family", 3: "Product Bundle"}
LINE_PRODUCT_TYPE: Options = {
    1: "Product",
    2: "Bundle",
    3: "Required Bundle Product",
    4: "Optional Bundle Product",
    5: "Project-based Service",
}
PROPERTY_CONFIGURATION: Options = {0: "Edit", 1: "Rectify", 2: "NotConfigured"}
QUANTITY_SELLING: Options = {1: "No Control", 2: "Whole", 3: "Whole and Fractional"}
PRICING_METHOD: Options = {
    1: "Currency Amount",
    2: "Percent of List",
    3: "Percent Markup - Current Cost",
    4: "Percent Margin - Current Cost",
    5: "Percent Markup - Standard Cost",
    6: "Percent Margin - Standard Cost",
}

PROCESSING_STATUS: Options = {
    647390011: "Draft",
    647390000: "Active",
    647390001: "Confirmed",
    647390002: "Packing Slip",
    647390003: "Invoiced",
    647390004: "Picked",
    647390005: "Partially Picked",
    647390006: "Partially Packed",
    647390007: "Shipped",
    647390008: "Partially Shipped",
    647390009: "Partially Invoiced",
    647390010: "Cancelled",
}

PRODUCT_STATES: StateModel = (
    {0: "Active", 1: "Retired", 2: "Draft", 3: "Under Revision"},
    {1: "Active", 2: "Retired", 0: "Draft", 3: "Under Revision"},
    {1: 0, 2: 1, 0: 2, 3: 3},
)
PRICE_LEVEL_STATES: StateModel = (
    {0: "Active", 1: "Inactive"},
    {100001: "Active", 100002: "Inactive"},
    {100001: 0, 100002: 1},
)
QUOTE_STATES: StateModel = (
    {0: "Draft", 1: "Active", 2: "Won", 3: "Closed"},
    {
        1: "In Progress",
        2: "In Progress",
        3: "Open",
        4: "Won",
        5: "Lost",
        6: "Canceled",
        7: "Revised",
        647390000: "Submitted",
    },
    {1: 0, 2: 1, 3: 1, 4: 2, 5: 3, 6: 3, 7: 3, 647390000: 3},
)
ORDER_STATES: StateModel = (
    {0: "Active", 1: "Submitted", 2: "Canceled", 3: "Fulfilled", 4: "Invoiced"},
    {
        1: "New",
        2: "Pending",
        3: "In Progress",
        4: "No Money",
        100001: "Complete",
        100002: "Partial",
        100003: "Invoiced",
    },
    {1: 0, 2: 0, 3: 1, 4: 2, 100001: 3, 100002: 3, 100003: 4},
)
INVOICE_STATES: StateModel = (
    {0: "Active", 1: "Closed (deprecated)", 2: "Paid", 3: "Canceled"},
    {
        1: "New",
        2: "Partially Shipped",
        4: "Billed",
        5: "Booked (applies to services)",
        6: "Installed (applies to services)",
        3: "Canceled (deprecated)",
        7: "Paid in Full (deprecated)",
        100001: "Complete",
        100002: "Partial",
        100003: "Canceled",
    },
    {1: 0, 2: 0, 4: 0, 5: 0, 6: 0, 3: 1, 7: 1, 100001: 2, 100002: 2, 100003: 3},
)

SERVICE_ENDPOINT_CONTRACT: Options = {
    1: "OneWay",
    2: "Queue",
    3: "Rest",
    4: "TwoWay",
    5: "Topic",
    6: "Queue_Persistent",
    7: "EventHub",
    8: "Webhook",
    9: "EventGrid",
    10: "ManagedDataLake",
    11: "Container Storage",
}
SERVICE_ENDPOINT_AUTH: Options = {
    1: "ACS",
    2: "SASKey",
    3: "SASToken",
    4: "WebhookKey",
    5: "HttpHeader",
    6: "HttpQueryString",
    7: "ConnectionString",
    8: "AccessKey",
}
MESSAGE_FORMAT: Options = {1: "BinaryXML", 2: "Json", 3: "TextXML"}
USER_CLAIM: Options = {1: "None", 2: "UserId", 3: "UserInfo"}
STEP_MODE: Options = {0: "Synchronous", 1: "Asynchronous"}
STEP_STAGE: Options = {
    5: "Initial Pre-operation (For internal use only)",
    10: "Pre-validation",
    15: "Internal Pre-operation Before External Plugins (For internal use only)",
    20: "Pre-operation",
    30: "Main Operation (For internal use only)",
    40: "Post-operation",
    45: "Internal Post-operation After External Plugins (For internal use only)",
    50: "Post-operation (Deprecated)",
}
STEP_DEPLOYMENT: Options = {
    0: "Server Only",
    1: "Microsoft Dynamics 365 Client for Outlook Only",
    2: "Both",
}
STEP_STATES: StateModel = (
    {0: "Enabled", 1: "Disabled"},
    {1: "Enabled", 2: "Disabled"},
    {1: 0, 2: 1},
)
IMAGE_TYPE: Options = {0: "PreImage", 1: "PostImage", 2: "Both"}
ASYNC_OPERATION_TYPE: Options = {1: "System Event", 10: "Workflow"}
ASYNC_STATES: StateModel = (
    {0: "Ready", 1: "Suspended", 2: "Locked", 3: "Completed"},
    {
        0: "Waiting For Resources",
        10: "Waiting",
        20: "In Progress",
        21: "Pausing",
        22: "Canceling",
        30: "Succeeded",
        31: "Failed",
        32: "Canceled",
    },
    {0: 0, 10: 1, 20: 2, 21: 2, 22: 2, 30: 3, 31: 3, 32: 3},
)
