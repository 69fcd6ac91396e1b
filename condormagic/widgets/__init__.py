"""What a person sees: run cards, and (ipywidgets) the monitor, graph view, dashboard and map."""
