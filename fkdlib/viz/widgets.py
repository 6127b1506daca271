"""Controls for the notebooks: sliders and a button that trains again and redraws. They run in a live Jupyter
kernel only; every notebook draws a static figure beneath them for readers on GitHub."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt


def train_button(run: Callable, sliders: Mapping[str, tuple[Sequence[float], float]], description: str = "train"):
    """One slider per ``label: (choices, value)`` (the value snapped to the nearest choice) and a button that calls
    ``run(*values)``, which returns ``(line, figure)``: the line is printed and the figure shown, replacing the last.
    A run whose loss is not finite (the trainer's ``FloatingPointError``) prints that, not a traceback."""
    import ipywidgets as widgets
    from IPython.display import display

    controls = [widgets.SelectionSlider(options=list(choices), value=min(choices, key=lambda v: abs(v - value)),
                                        description=label, continuous_update=False)
                for label, (choices, value) in sliders.items()]
    button, out = widgets.Button(description=description, button_style="primary"), widgets.Output()

    def on_click(_):
        button.disabled = True
        values = [c.value for c in controls]
        chosen = ", ".join(f"{c.description}={v:g}" for c, v in zip(controls, values))
        with out:
            out.clear_output(wait=True)
            try:
                line, fig = run(*values)
                print(f"{chosen}: {line}")
                display(fig)
                plt.close(fig)
            except FloatingPointError as err:  # weights too large for the learning rate: the loss blew up
                print(f"{chosen}: training diverged ({str(err).split(' (')[0]}); try smaller weights")
            finally:
                button.disabled = False

    button.on_click(on_click)
    return widgets.VBox([widgets.HBox([*controls, button]), out])
