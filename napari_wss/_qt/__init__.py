"""Qt parts of the widget: each small, composed by :class:`napari_wss._widget.WssWidget`."""
