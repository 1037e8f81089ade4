"""Energy, carbon and water inside the tools ML people already use.

One module per tool, each importing its framework itself: ``import wattprint`` (and this
package) load none of them. Each is a thin layer over :class:`wattprint.EnergyMeter`: no
measurement code of its own.
"""
