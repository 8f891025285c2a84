"""The built-in business vocabulary of the simulated architect.

Each sector names its party (who acts), its transaction (what they do) with a status
lifecycle, and an optional location and note table; each variant names a concrete
domain and its resource (what the transaction consumes). Combined with the flavors in
:mod:`scaleenv.agents.sim.world.vocab` they give hundreds of distinct domains.

Lifecycle convention: ``statuses = [initial, after_pay, after_advance, cancelled]``.
"""

from __future__ import annotations

from typing import NamedTuple


class Variant(NamedTuple):
    name: str            # the domain name (flavor qualifiers are prefixed to it)
    resource: str        # resource table (plural)
    resource_one: str    # resource singular
    stock: str           # the int field the transaction consumes
    categories: tuple[str, ...]
    blurb: str


class Sector(NamedTuple):
    sector: str
    party: str
    party_one: str
    txn: str
    txn_one: str
    statuses: tuple[str, str, str, str]
    create_verb: str     # create_verb + "_" + txn_one  (place_order, make_reservation)
    advance_verb: str    # advance_verb + "_" + txn_one (ship_order, check_in_reservation)
    edit_field: str      # a free-text field of the transaction the party may change
    qty: str             # the quantity parameter/field name
    balance: str         # the party's money field
    location: str
    location_one: str
    note: str
    note_one: str
    variants: tuple[Variant, ...]


V = Variant
SECTORS: tuple[Sector, ...] = (
    Sector("retail", "customers", "customer", "orders", "order", ("pending", "paid", "shipped", "cancelled"),
           "place", "ship", "shipping_address", "quantity", "balance", "warehouses", "warehouse", "reviews", "review", (
               V("online_shop", "products", "product", "stock", ("electronics", "home", "toys", "clothing"), "an online shop selling goods"),
               V("bookstore", "books", "book", "stock", ("fiction", "science", "history", "children"), "a bookstore with mail orders"),
               V("grocery_delivery", "groceries", "grocery", "stock", ("produce", "dairy", "bakery", "pantry"), "a grocery delivery service"),
           )),
    Sector("airline", "passengers", "passenger", "bookings", "booking", ("reserved", "ticketed", "checked_in", "cancelled"),
           "create", "check_in", "seat_preference", "seats", "wallet_balance", "airports", "airport", "surveys", "survey", (
               V("airline", "flights", "flight", "seats_available", ("economy", "premium", "business", "first"), "an airline selling seats on flights"),
               V("regional_airline", "routes", "route", "seats_available", ("short_haul", "island", "commuter"), "a regional airline"),
               V("charter_flights", "charters", "charter", "seats_available", ("private", "group", "cargo_combi"), "a charter flight operator"),
           )),
    Sector("hotel", "guests", "guest", "reservations", "reservation", ("held", "confirmed", "checked_in", "cancelled"),
           "make", "check_in", "special_requests", "nights", "credit", "properties", "property", "stay_reviews", "stay_review", (
               V("hotel", "room_types", "room_type", "rooms_left", ("single", "double", "suite"), "a hotel taking room reservations"),
               V("hostel", "dorm_beds", "dorm_bed", "beds_left", ("mixed", "female", "private"), "a hostel renting beds"),
               V("vacation_rentals", "listings", "listing", "units_left", ("apartment", "cabin", "villa"), "a vacation rental platform"),
           )),
    Sector("library", "members", "member", "loans", "loan", ("requested", "approved", "checked_out", "cancelled"),
           "request", "check_out", "pickup_branch_note", "copies", "fine_credit", "branches", "branch", "loan_notes", "loan_note", (
               V("public_library", "titles", "title", "copies_available", ("novel", "reference", "comics", "audiobook"), "a public library lending titles"),
               V("tool_library", "tools", "tool", "units_available", ("power", "garden", "hand"), "a community tool library"),
               V("media_library", "media_items", "media_item", "copies_available", ("dvd", "vinyl", "game"), "a media lending library"),
           )),
    Sector("clinic", "patients", "patient", "appointments", "appointment", ("requested", "confirmed", "completed", "cancelled"),
           "schedule", "complete", "symptoms_note", "slots", "account_credit", "sites", "site", "visit_notes", "visit_note", (
               V("family_clinic", "practitioners", "practitioner", "slots_open", ("general", "pediatrics", "geriatrics"), "a family clinic booking appointments"),
               V("dental_clinic", "dentists", "dentist", "slots_open", ("cleaning", "orthodontics", "surgery"), "a dental clinic"),
               V("physio_center", "therapists", "therapist", "slots_open", ("sports", "rehab", "massage"), "a physiotherapy center"),
           )),
    Sector("bank", "account_holders", "account_holder", "transfers", "transfer", ("initiated", "authorized", "settled", "cancelled"),
           "initiate", "settle", "reference_text", "units", "balance", "bank_branches", "bank_branch", "disputes", "dispute", (
               V("retail_bank", "payees", "payee", "daily_limit_left", ("utility", "person", "merchant"), "a retail bank moving money to payees"),
               V("credit_union", "beneficiaries", "beneficiary", "daily_limit_left", ("family", "business", "charity"), "a credit union"),
               V("neobank", "merchants", "merchant", "daily_limit_left", ("online", "travel", "dining"), "a mobile-only bank"),
           )),
    Sector("car_rental", "drivers", "driver", "rentals", "rental", ("booked", "paid", "picked_up", "cancelled"),
           "book", "pick_up", "dropoff_location", "days", "deposit_balance", "depots", "depot", "damage_reports", "damage_report", (
               V("car_rental", "vehicles", "vehicle", "units_available", ("compact", "suv", "van", "luxury"), "a car rental company"),
               V("van_hire", "vans", "van", "units_available", ("small", "medium", "large"), "a van hire company"),
               V("rv_rentals", "campers", "camper", "units_available", ("pop_up", "motorhome", "trailer"), "a camper and RV rental"),
           )),
    Sector("bike_sharing", "riders", "rider", "trips", "trip", ("reserved", "unlocked", "ended", "cancelled"),
           "reserve", "end", "route_note", "minutes", "wallet_balance", "stations", "station", "ride_reports", "ride_report", (
               V("bike_rental", "bikes", "bike", "docks_free", ("city", "electric", "cargo"), "a bike rental network"),
               V("scooter_share", "scooters", "scooter", "units_free", ("standard", "long_range", "seated"), "an electric scooter share"),
               V("ebike_hire", "ebikes", "ebike", "units_free", ("commuter", "mountain", "folding"), "an e-bike hire service"),
           )),
    Sector("gym", "members", "member", "class_bookings", "class_booking", ("booked", "paid", "attended", "cancelled"),
           "book", "attend", "equipment_note", "spots", "credit", "gyms", "gym", "class_ratings", "class_rating", (
               V("fitness_club", "fitness_classes", "fitness_class", "spots_left", ("yoga", "spin", "hiit", "pilates"), "a fitness club with classes"),
               V("climbing_gym", "climbing_sessions", "climbing_session", "spots_left", ("bouldering", "top_rope", "lead"), "a climbing gym"),
               V("swim_center", "swim_lanes", "swim_lane", "spots_left", ("lap", "lesson", "aqua_fit"), "a swimming center"),
           )),
    Sector("restaurant", "diners", "diner", "table_orders", "table_order", ("placed", "paid", "served", "cancelled"),
           "place", "serve", "kitchen_note", "portions", "gift_balance", "dining_rooms", "dining_room", "dish_reviews", "dish_review", (
               V("restaurant", "dishes", "dish", "portions_left", ("starter", "main", "dessert"), "a restaurant taking table orders"),
               V("food_truck", "menu_items", "menu_item", "portions_left", ("taco", "burger", "drink"), "a food truck"),
               V("bakery_cafe", "pastries", "pastry", "portions_left", ("bread", "cake", "coffee"), "a bakery cafe"),
           )),
    Sector("cinema", "moviegoers", "moviegoer", "ticket_orders", "ticket_order", ("held", "paid", "scanned", "cancelled"),
           "buy", "scan", "seat_note", "seats", "voucher_balance", "theaters", "theater", "film_ratings", "film_rating", (
               V("cinema", "screenings", "screening", "seats_left", ("standard", "imax", "three_d"), "a cinema selling tickets for screenings"),
               V("drive_in", "showings", "showing", "spaces_left", ("double_feature", "classic", "premiere"), "a drive-in theater"),
               V("film_festival", "festival_screenings", "festival_screening", "seats_left", ("shorts", "feature", "documentary"), "a film festival box office"),
           )),
    Sector("courier", "senders", "sender", "shipments", "shipment", ("created", "paid", "delivered", "cancelled"),
           "create", "deliver", "delivery_instructions", "parcels", "account_balance", "hubs", "hub", "delivery_feedback", "delivery_feedback_entry", (
               V("courier", "service_levels", "service_level", "capacity_left", ("same_day", "next_day", "economy"), "a courier shipping parcels"),
               V("freight_forwarding", "lanes", "lane", "capacity_left", ("air", "sea", "road"), "a freight forwarder"),
               V("moving_company", "moving_slots", "moving_slot", "capacity_left", ("studio", "family", "office"), "a moving company"),
           )),
    Sector("insurance", "policyholders", "policyholder", "claims", "claim", ("filed", "approved", "paid_out", "cancelled"),
           "file", "pay_out", "incident_description", "units", "premium_credit", "offices", "office", "adjuster_notes", "adjuster_note", (
               V("car_insurance", "coverages", "coverage", "claims_left", ("collision", "theft", "glass"), "a car insurer handling claims"),
               V("home_insurance", "home_policies", "home_policy", "claims_left", ("fire", "flood", "burglary"), "a home insurer"),
               V("travel_insurance", "travel_plans", "travel_plan", "claims_left", ("medical", "baggage", "delay"), "a travel insurer"),
           )),
    Sector("telecom", "subscribers", "subscriber", "subscriptions", "subscription", ("pending", "active", "suspended", "cancelled"),
           "start", "suspend", "device_note", "lines", "prepaid_balance", "stores", "store", "support_tickets", "support_ticket", (
               V("mobile_carrier", "plans", "plan", "lines_left", ("prepaid", "postpaid", "family"), "a mobile carrier"),
               V("internet_provider", "broadband_plans", "broadband_plan", "lines_left", ("fiber", "cable", "dsl"), "an internet provider"),
               V("streaming_service", "bundles", "bundle", "seats_left", ("basic", "standard", "premium"), "a streaming service"),
           )),
    Sector("university", "students", "student", "enrollments", "enrollment", ("requested", "paid", "completed", "cancelled"),
           "request", "complete", "study_note", "credit_hours", "tuition_credit", "campuses", "campus", "course_evaluations", "course_evaluation", (
               V("university_registrar", "courses", "course", "seats_left", ("math", "arts", "engineering", "biology"), "a university registrar"),
               V("language_school", "language_courses", "language_course", "seats_left", ("spanish", "japanese", "german"), "a language school"),
               V("online_academy", "modules", "module", "seats_left", ("coding", "design", "marketing"), "an online academy"),
           )),
    Sector("pharmacy", "patients", "patient", "prescriptions", "prescription", ("submitted", "paid", "dispensed", "cancelled"),
           "submit", "dispense", "dosage_note", "packs", "account_credit", "pharmacies", "pharmacy", "refill_notes", "refill_note", (
               V("pharmacy", "medicines", "medicine", "stock", ("antibiotic", "analgesic", "vitamin"), "a pharmacy filling prescriptions"),
               V("mail_order_pharmacy", "drugs", "drug", "stock", ("chronic", "acute", "otc"), "a mail-order pharmacy"),
               V("compounding_lab", "formulas", "formula", "batches_left", ("cream", "capsule", "syrup"), "a compounding pharmacy lab"),
           )),
    Sector("pet_care", "owners", "owner", "visits", "visit", ("booked", "confirmed", "done", "cancelled"),
           "book", "finish", "pet_note", "sessions", "account_credit", "clinics", "clinic", "care_notes", "care_note", (
               V("vet_clinic", "vet_services", "vet_service", "slots_left", ("checkup", "vaccine", "dental"), "a veterinary clinic"),
               V("pet_grooming", "grooming_packages", "grooming_package", "slots_left", ("bath", "haircut", "nails"), "a pet grooming salon"),
               V("dog_daycare", "daycare_programs", "daycare_program", "spots_left", ("half_day", "full_day", "overnight"), "a dog daycare"),
           )),
    Sector("event_ticketing", "attendees", "attendee", "ticket_purchases", "ticket_purchase", ("reserved", "paid", "redeemed", "cancelled"),
           "reserve", "redeem", "accessibility_note", "tickets", "wallet_balance", "venues", "venue", "event_reviews", "event_review", (
               V("concert_tickets", "concerts", "concert", "tickets_left", ("rock", "jazz", "classical", "pop"), "a concert ticket office"),
               V("sports_tickets", "matches", "match", "tickets_left", ("football", "basketball", "tennis"), "a sports ticket office"),
               V("theater_tickets", "performances", "performance", "tickets_left", ("drama", "musical", "opera"), "a theater box office"),
           )),
    Sector("coworking", "members", "member", "desk_bookings", "desk_booking", ("requested", "confirmed", "used", "cancelled"),
           "request", "use", "setup_note", "hours", "credit_balance", "buildings", "building", "space_feedback", "space_feedback_entry", (
               V("coworking_space", "desks", "desk", "hours_left", ("hot_desk", "fixed", "booth"), "a coworking space"),
               V("meeting_rooms", "meeting_rooms", "meeting_room", "hours_left", ("small", "boardroom", "studio"), "a meeting room rental"),
               V("maker_space", "workbenches", "workbench", "hours_left", ("wood", "metal", "electronics"), "a maker space"),
           )),
    Sector("utilities", "account_owners", "account_owner", "service_orders", "service_order", ("opened", "scheduled", "closed", "cancelled"),
           "open", "close", "access_note", "units", "account_balance", "districts", "district", "meter_readings", "meter_reading", (
               V("power_utility", "tariffs", "tariff", "capacity_left", ("residential", "business", "green"), "an electricity utility"),
               V("water_utility", "water_services", "water_service", "capacity_left", ("connection", "repair", "meter"), "a water utility"),
               V("gas_utility", "gas_services", "gas_service", "capacity_left", ("install", "inspection", "repair"), "a gas utility"),
           )),
    Sector("travel_agency", "travelers", "traveler", "trip_bookings", "trip_booking", ("quoted", "paid", "departed", "cancelled"),
           "quote", "depart", "travel_note", "travelers_count", "wallet_balance", "agencies", "agency", "trip_reviews", "trip_review", (
               V("tour_operator", "tours", "tour", "places_left", ("city", "adventure", "cultural"), "a tour operator"),
               V("cruise_line", "cruises", "cruise", "cabins_left", ("inside", "ocean_view", "balcony"), "a cruise line"),
               V("ski_resort", "ski_packages", "ski_package", "places_left", ("beginner", "expert", "family"), "a ski resort booking desk"),
           )),
    Sector("parking", "motorists", "motorist", "parking_sessions", "parking_session", ("reserved", "paid", "exited", "cancelled"),
           "reserve", "exit", "plate_note", "hours", "wallet_balance", "garages", "garage", "parking_complaints", "parking_complaint", (
               V("city_parking", "parking_zones", "parking_zone", "spaces_left", ("street", "garage", "ev"), "a city parking operator"),
               V("airport_parking", "parking_lots", "parking_lot", "spaces_left", ("short_stay", "long_stay", "valet"), "an airport parking service"),
               V("ev_charging", "chargers", "charger", "ports_free", ("fast", "standard", "ultra"), "an EV charging network"),
           )),
    Sector("home_services", "homeowners", "homeowner", "jobs", "job", ("requested", "scheduled", "finished", "cancelled"),
           "request", "finish", "access_instructions", "hours", "account_credit", "service_areas", "service_area", "job_reviews", "job_review", (
               V("plumbing_service", "plumbers", "plumber", "hours_free", ("leak", "install", "drain"), "a plumbing service"),
               V("cleaning_service", "cleaners", "cleaner", "hours_free", ("standard", "deep", "move_out"), "a home cleaning service"),
               V("handyman_service", "handymen", "handyman", "hours_free", ("repair", "assembly", "painting"), "a handyman service"),
           )),
    Sector("marketplace", "buyers", "buyer", "purchases", "purchase", ("pending", "paid", "received", "cancelled"),
           "make", "receive", "delivery_note", "quantity", "store_credit", "sellers_hubs", "sellers_hub", "seller_ratings", "seller_rating", (
               V("craft_marketplace", "listings", "listing", "stock", ("jewelry", "ceramics", "textiles"), "a handmade craft marketplace"),
               V("secondhand_market", "used_items", "used_item", "stock", ("furniture", "electronics", "books"), "a second-hand marketplace"),
               V("farm_market", "produce_lots", "produce_lot", "stock", ("vegetables", "fruit", "eggs"), "a farmers' market platform"),
           )),
    Sector("education_kids", "parents", "parent", "registrations", "registration", ("pending", "paid", "attended", "cancelled"),
           "create", "attend", "child_note", "children", "account_credit", "schools", "school", "camp_feedback", "camp_feedback_entry", (
               V("summer_camp", "camp_sessions", "camp_session", "spots_left", ("sports", "science", "arts"), "a summer camp"),
               V("after_school", "programs", "program", "spots_left", ("homework", "music", "chess"), "an after-school program"),
               V("tutoring_center", "tutoring_slots", "tutoring_slot", "spots_left", ("math", "reading", "test_prep"), "a tutoring center"),
           )),
    Sector("salon", "clients", "client", "salon_bookings", "salon_booking", ("booked", "confirmed", "completed", "cancelled"),
           "book", "complete", "style_note", "sessions", "gift_balance", "salons", "salon", "stylist_reviews", "stylist_review", (
               V("hair_salon", "stylists", "stylist", "slots_left", ("cut", "color", "styling"), "a hair salon"),
               V("nail_studio", "nail_services", "nail_service", "slots_left", ("manicure", "pedicure", "gel"), "a nail studio"),
               V("day_spa", "spa_treatments", "spa_treatment", "slots_left", ("massage", "facial", "sauna"), "a day spa"),
           )),
)

# Name qualifiers of the flavors (flavor 0 keeps the bare variant name).
QUALIFIERS = ("city", "regional", "online", "campus", "express", "premium", "community", "metro", "coastal", "budget")
FLAVORS = 4

PARTY_NAMES = ("Ana Ruiz", "Ben Okafor", "Chloe Martin", "Dev Patel", "Eva Novak", "Femi Adeyemi", "Gus Larsen",
               "Hana Sato", "Ivan Petrov", "Jade Wong", "Karl Berg", "Lena Fischer", "Marco Rossi", "Nia Brown")
