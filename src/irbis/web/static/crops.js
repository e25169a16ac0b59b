/* Drawing crops of media files (annotation boxes) onto canvases. */
"use strict";

const irbisCrops = (() => {
  const cache = new Map();

  function load(mediaId) {
    if (!cache.has(mediaId)) {
      cache.set(mediaId, new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = () => reject(new Error(`media ${mediaId} could not be loaded`));
        img.src = `/api/media/${mediaId}/file`;
      }));
    }
    return cache.get(mediaId);
  }

  /* Draw the box (fractions of the frame, padded by `pad`) of `img` into the
     rectangle (dx, dy, dw, dh) of `ctx`, keeping the aspect ratio. Returns a
     function mapping original-frame pixels to canvas pixels. */
  function draw(ctx, img, box, dx, dy, dw, dh, pad) {
    pad = pad === undefined ? 0.05 : pad;
    const W = img.naturalWidth, H = img.naturalHeight;
    const x0 = Math.max(0, (box.x - pad * box.width) * W);
    const y0 = Math.max(0, (box.y - pad * box.height) * H);
    const x1 = Math.min(W, (box.x + box.width * (1 + pad)) * W);
    const y1 = Math.min(H, (box.y + box.height * (1 + pad)) * H);
    const s = Math.min(dw / (x1 - x0), dh / (y1 - y0));
    const ox = dx + (dw - s * (x1 - x0)) / 2, oy = dy + (dh - s * (y1 - y0)) / 2;
    ctx.drawImage(img, x0, y0, x1 - x0, y1 - y0, ox, oy, s * (x1 - x0), s * (y1 - y0));
    return (x, y) => [ox + (x - x0) * s, oy + (y - y0) * s];
  }

  async function thumb(canvas, mediaId, box) {
    const img = await load(mediaId);
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    draw(ctx, img, box, 0, 0, canvas.width, canvas.height);
  }

  return { load, draw, thumb };
})();
