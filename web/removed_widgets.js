// Saved UI workflows keep their values when a TruePose node loses a widget.
//
// The frontend gives a saved node's widgets_values to its widgets by position, so a removed
// widget would hand its value to the next one. Each entry names the positions the removed
// widgets held and the length of the old list, and drops those values before the node loads.
import { app } from "../../scripts/app.js";

const REMOVED = {
  // TruePose Sampler's width and height (after denoise): an old list holds 10 values
  // (seed, its control, steps, cfg, sampler_name, scheduler, denoise, width, height,
  // batch_size).
  TruePose_TrueSampler: { length: 10, drop: [7, 8] },
};

app.registerExtension({
  name: "truepose.removedWidgets",
  beforeRegisterNodeDef(nodeType, nodeData) {
    const removed = REMOVED[nodeData.name];
    if (!removed) return;
    const configure = nodeType.prototype.configure;
    nodeType.prototype.configure = function (info) {
      const values = info && info.widgets_values;
      if (Array.isArray(values) && values.length === removed.length) {
        const kept = values.filter((_, i) => !removed.drop.includes(i));
        info = { ...info, widgets_values: kept };
      }
      return configure.call(this, info);
    };
  },
});
