"""Domain briefs: what each domain slot of a run is asked to be.

Stage 1's architect is given a brief (a name, a description, keywords and a size: how
many tools) and designs the domain from it, as the paper's domain definitions
(``name: job seeking``, a description, keywords). ``briefs_for`` assigns briefs to a run's
slots: the ``paper`` preset gives the paper's 16 domains in its order, with sizes spread
over 25-70 tools; the default gives a seeded permutation of the whole catalogue, a
qualifier making repeated names distinct. Pure functions of the run's config.
"""

from __future__ import annotations

import functools
import random
from typing import NamedTuple

from scaleenv._seeding import derive_seed


class Brief(NamedTuple):
    """What one domain is asked to be."""

    name: str
    description: str
    keywords: tuple[str, ...]
    tools: int = 40
    """How many tools the domain should have (the architect lands near it)."""


CATALOGUE: tuple[Brief, ...] = (
    Brief('entertainment_media_query', 'Look up films, series, music and podcasts, follow creators, keep watchlists and reviews.',
          ('movies', 'music', 'streaming', 'reviews', 'watchlist')),
    Brief('wedding_planning', "Plan weddings: venues, vendors, guests, budgets, bookings and the day's schedule.",
          ('wedding', 'venue', 'guests', 'vendors', 'budget')),
    Brief('email_management', 'Read, send, file and search email: mailboxes, folders, threads, labels, contacts and rules.',
          ('email', 'inbox', 'labels', 'contacts', 'threads')),
    Brief('agriculture_environmental', 'Run farms: fields, crops, sensors, irrigation, harvests and soil and weather readings.',
          ('farm', 'crops', 'irrigation', 'soil', 'harvest')),
    Brief('stock_trading', 'Trade stocks: accounts, portfolios, orders, positions, watchlists, alerts and transfers.',
          ('stocks', 'portfolio', 'orders', 'trading', 'alerts')),
    Brief('pet_care', 'Care for pets: owners, pets, vets, appointments, vaccinations, medications and boarding.',
          ('pets', 'veterinary', 'grooming', 'boarding', 'vaccination')),
    Brief('knowledge_management', "Keep a team's knowledge: spaces, pages, versions, tags, comments, links and reviews.",
          ('wiki', 'documents', 'knowledge base', 'tags', 'search')),
    Brief('social_media_messaging', 'Post, follow, message and moderate on a social network.',
          ('social', 'posts', 'followers', 'messages', 'groups')),
    Brief('online_learning', 'Learn online: courses, modules, lessons, enrollments, quizzes, submissions and certificates.',
          ('courses', 'students', 'quizzes', 'certificates', 'enrollment')),
    Brief('smart_home', 'Run a smart home: rooms, devices, scenes, schedules, automations, energy readings and alerts.',
          ('smart home', 'devices', 'automation', 'energy', 'scenes')),
    Brief('express_logistics', 'Ship parcels: senders, shipments, parcels, routes, hubs, couriers, tracking and claims.',
          ('shipping', 'parcels', 'tracking', 'couriers', 'delivery')),
    Brief('football', 'Follow and run football: leagues, clubs, players, matches, lineups, goals, tickets and transfers.',
          ('football', 'matches', 'players', 'clubs', 'tickets')),
    Brief('job_seeking', 'Centralize job seeking: resumes, applications, interviews, feedback, offers and follow-ups.',
          ('job search', 'resume', 'applications', 'interviews', 'offers')),
    Brief('second_hand_marketplace', 'Buy and sell used goods: listings, offers, orders, messages, ratings and disputes.',
          ('second hand', 'listings', 'offers', 'sellers', 'marketplace')),
    Brief('project_management', 'Run projects: workspaces, projects, tasks, sprints, assignments, time logs and comments.',
          ('projects', 'tasks', 'sprints', 'teams', 'time tracking')),
    Brief('healthcare_telemedicine', 'See doctors remotely: patients, providers, consultations, prescriptions, records and billing.',
          ('telemedicine', 'consultations', 'prescriptions', 'patients', 'doctors')),
    Brief('online_retail', 'Sell online: customers, products, carts, orders, shipments, returns and reviews.',
          ('shop', 'orders', 'returns', 'products', 'reviews')),
    Brief('airline_booking', 'Book flights: passengers, flights, bookings, seats, baggage, check-in and loyalty.',
          ('flights', 'bookings', 'seats', 'baggage', 'loyalty')),
    Brief('hotel_stays', 'Run a hotel: guests, room types, rooms, reservations, stays, housekeeping and folios.',
          ('hotel', 'rooms', 'reservations', 'housekeeping', 'guests')),
    Brief('public_library', 'Lend books and media: members, titles, copies, loans, holds, fines and events.',
          ('library', 'books', 'loans', 'holds', 'fines')),
    Brief('clinic_scheduling', 'Schedule a clinic: patients, practitioners, rooms, appointments, referrals and notes.',
          ('clinic', 'appointments', 'referrals', 'practitioners')),
    Brief('banking', 'Bank: customers, accounts, cards, payees, transfers, standing orders and disputes.',
          ('bank', 'accounts', 'transfers', 'cards', 'payees')),
    Brief('car_rental', 'Rent cars: drivers, depots, vehicles, rentals, extras, damage reports and payments.',
          ('car rental', 'vehicles', 'depots', 'rentals')),
    Brief('restaurant_ops', 'Run restaurants: diners, tables, menus, dishes, orders, reservations and reviews.',
          ('restaurant', 'menu', 'reservations', 'orders')),
    Brief('event_ticketing', 'Sell event tickets: venues, events, ticket tiers, orders, attendees, check-ins and refunds.',
          ('tickets', 'events', 'venues', 'check-in')),
    Brief('insurance_claims', 'Handle insurance: policyholders, policies, coverages, claims, adjusters and payouts.',
          ('insurance', 'claims', 'policies', 'coverage')),
    Brief('university_registrar', 'Register students: programs, courses, sections, enrollments, grades and transcripts.',
          ('university', 'courses', 'enrollment', 'grades')),
    Brief('home_services', 'Book home services: homeowners, providers, jobs, quotes, visits, invoices and reviews.',
          ('plumbing', 'cleaning', 'repairs', 'quotes')),
    Brief('fitness_club', 'Run a gym: members, classes, sessions, bookings, trainers, plans and check-ins.',
          ('gym', 'classes', 'trainers', 'memberships')),
    Brief('utility_services', 'Serve utility customers: accounts, meters, readings, tariffs, bills, outages and service orders.',
          ('utility', 'meters', 'bills', 'outages')),
)
"""Every brief scaleenv knows; the first 16 are the paper's domains (its section 5.1)."""

PAPER: tuple[Brief, ...] = CATALOGUE[:16]
PAPER_TASKS: tuple[int, ...] = (512, 512, 256, 256, 128, 128, 128, 128, 64, 64, 64, 64, 64, 64, 64, 64)
"""Tasks per domain in the paper's table 8 (2,560 in all), in the order of :data:`PAPER`."""

QUALIFIERS = ("city", "regional", "online", "campus", "express", "premium", "community", "metro", "coastal", "budget",
              "global", "family", "rural", "corporate", "student", "boutique")


TAKEN_WINDOW = 64
"""How many of the slots before it a slot's architect is told the names of (``taken``)."""


@functools.lru_cache(maxsize=16)
def _pool(preset: str, seed: int) -> tuple[Brief, ...]:
    """The run's briefs in slot order (one lap): the paper's, or a seeded permutation of the catalogue."""
    pool = list(PAPER if preset == "paper" else CATALOGUE)
    if preset != "paper":
        random.Random(derive_seed(seed, "briefs", preset)).shuffle(pool)
    return tuple(pool)


def brief_name(preset: str, slot: int, seed: int) -> str:
    """The name of slot ``slot``'s brief (qualified after the first lap of the pool)."""
    pool = _pool(preset, seed)
    base = pool[slot % len(pool)]
    lap = slot // len(pool)
    name = base.name if lap == 0 else f"{QUALIFIERS[(slot + lap) % len(QUALIFIERS)]}_{base.name}"
    if lap >= len(QUALIFIERS):
        name = f"{name}_{lap}"
    return name


def brief_for(preset: str, slot: int, seed: int, min_tools: int, max_tools: int) -> Brief:
    """The brief of slot ``slot``: costs the same for any slot (a run of 100,000 domains
    does not compute every earlier slot's brief for each one)."""
    pool = _pool(preset, seed)
    size = random.Random(derive_seed(seed, "brief-size", slot)).randint(min_tools, max_tools)
    return pool[slot % len(pool)]._replace(name=brief_name(preset, slot, seed), tools=size)


def taken_names(preset: str, slot: int, seed: int) -> list[str]:
    """What slot ``slot``'s architect is told other slots design (``taken``): the names of
    the :data:`TAKEN_WINDOW` slots before it, in slot order. Bounded, so the architect's
    prompt does not grow with the run; within it are every other brief of the pool and
    the previous laps of the slot's own brief (the look-alikes), for the catalogue's 30."""
    return [brief_name(preset, s, seed) for s in range(max(0, slot - TAKEN_WINDOW), slot)]


def briefs_for(preset: str, domains: int, seed: int, min_tools: int, max_tools: int) -> list[Brief]:
    """The brief of each slot ``0..domains-1`` (see the module doc)."""
    return [brief_for(preset, slot, seed, min_tools, max_tools) for slot in range(domains)]
