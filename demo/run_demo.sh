#!/usr/bin/env bash
# The main job on a small simulated plate, on this machine's cores with the embedded SQLite database.
# Every command is printed before it runs, so you can repeat it by hand.
set -euo pipefail

export TMAPS_HOME="${TMAPS_HOME:-$PWD/.demo}"
export TMAPS_DB_URL="${TMAPS_DB_URL:-sqlite:///$TMAPS_HOME/tissuemaps.db}"
export TMAPS_CONFIG_FILE="${TMAPS_CONFIG_FILE:-$TMAPS_HOME/tissuemaps.cfg}"
PLATE_DIR="$TMAPS_HOME/microscope/plate01"

run() { printf '\n$ %s\n' "$*"; "$@"; }

echo "TissueMAPS demo: TMAPS_HOME=$TMAPS_HOME"
# Start from scratch so the demo gives the same result every time.
rm -rf "$TMAPS_HOME"
mkdir -p "$TMAPS_HOME"

run tm_simulate plate "$PLATE_DIR" --microscope cellvoyager --plate-format 384 \
    --wells 4 --sites 4 --channels 2 --size 512x512 --seed 1
run tm_add user -n demo -p demo -e demo@example.org
printf '\n$ tm_add experiment -e demo -u demo --microscope-type cellvoyager --plate-format 384\n'
EXPERIMENT_ID=$(tm_add experiment -e demo -u demo --microscope-type cellvoyager --plate-format 384)
echo "$EXPERIMENT_ID"
run tm_add plate -e demo -p plate01
run tm_add acquisition -e demo -p plate01 -a acquisition01
run tm_add files -e demo -p plate01 -a acquisition01 -s "$PLATE_DIR"
run tm_workflow "$EXPERIMENT_ID" submit
run tm_workflow "$EXPERIMENT_ID" status
CHANNEL=$(python -c "
import sqlalchemy as sa, tmlib.models as tm
with tm.utils.ExperimentSession($EXPERIMENT_ID) as s:
    print(s.scalars(sa.select(tm.Channel.name).order_by(tm.Channel.id)).first())")
run illuminati "$EXPERIMENT_ID" export --channel "$CHANNEL" -o "$TMAPS_HOME/overview.png"
run jterator "$EXPERIMENT_ID" export-features --objects Cells -o "$TMAPS_HOME/cells.csv"
run tm_export "$EXPERIMENT_ID" ome-zarr "$TMAPS_HOME/ome-zarr" --objects Nuclei --objects Cells --features

printf '\nWhat was produced:\n'
python - "$EXPERIMENT_ID" <<'PY'
import sys

import sqlalchemy as sa

import tmlib.models as tm

experiment_id = int(sys.argv[1])
with tm.utils.MainSession() as session:
    ref = session.get(tm.ExperimentReference, experiment_id)
    print(f"  experiment {ref.id} {ref.name!r} of user {ref.user.name!r} in {ref.location}")
with tm.utils.ExperimentSession(experiment_id) as session:
    for plate in session.scalars(sa.select(tm.Plate)):
        for acq in plate.acquisitions:
            print(
                f"  plate {plate.name!r}, acquisition {acq.name!r}: "
                f"{len(acq.microscope_image_files)} image files, "
                f"{len(acq.microscope_metadata_files)} metadata files"
            )
    counts = {
        model.__name__: session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (tm.Well, tm.Site, tm.Channel, tm.Cycle, tm.ChannelImageFile)
    }
    print("  " + ", ".join(f"{n} {name}s" for name, n in counts.items()))
    for layer in session.scalars(sa.select(tm.ChannelLayer)):
        with layer.open_tiles() as tiles:
            stats = layer.channel.illumstats_file.get()
            print(
                f"  channel {layer.channel.name}: illumination statistics (99.9th percentile "
                f"{stats.closest_percentile(99.9):.0f}), pyramid of {len(tiles)} tiles, "
                f"window {layer.min_intensity:.0f}-{layer.max_intensity:.0f}"
            )
    for kind in session.scalars(sa.select(tm.MapobjectType).order_by(tm.MapobjectType.id)):
        n = session.scalar(
            sa.select(sa.func.count(tm.Mapobject.id)).where(
                tm.Mapobject.mapobject_type_id == kind.id
            )
        )
        print(f"  {n} {kind.name} objects with {len(kind.features)} features each")
    plane = session.scalars(sa.select(tm.ChannelImageFile).limit(1)).one()
    pixels = plane.get()
    print(
        f"  e.g. channel {plane.channel.name}, well {plane.site.well.name}, site "
        f"({plane.site.y}, {plane.site.x}): {pixels.shape} {pixels.dtype}, "
        f"max {pixels.max()}, stored in {plane.location}"
    )
PY

# Serve the experiment and talk to it the way users do: over HTTP with tm_client.
PORT="${DEMO_PORT:-5002}"
printf '\n$ tm_server --host 127.0.0.1 --port %s &\n' "$PORT"
tm_server --host 127.0.0.1 --port "$PORT" 2>"$TMAPS_HOME/server.log" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/api/openapi.json')" \
        2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMAPS_HOME/server.log" >&2; exit 1; }
    sleep 0.2
done
export TM_HOST=127.0.0.1 TM_PORT="$PORT" TM_USER=demo TM_PASSWORD=demo
run tm_client experiment ls
run tm_client channel -e demo ls
run tm_client object-type -e demo ls
run tm_client feature-values -e demo download -o Cells --directory "$TMAPS_HOME/download"
run tm_client channel-image -e demo download -p plate01 -w A01 -x 0 -y 0 -c "$CHANNEL" \
    --correct --directory "$TMAPS_HOME/download"

cat <<EOT

Ground truth of the simulated plate (cell centres, label images): $PLATE_DIR/ground_truth
Job logs: $TMAPS_HOME/experiments/experiment_$EXPERIMENT_ID/workflow/<step>/log/
Look at the data from Python (see README.md, "Using the library"):
    TMAPS_HOME=$TMAPS_HOME .venv/bin/python
    >>> import tmlib.models as tm
    >>> with tm.utils.ExperimentSession($EXPERIMENT_ID) as s: ...
The whole mosaic of channel $CHANNEL, as the viewer will show it: $TMAPS_HOME/overview.png
Features of every cell (one row per cell): $TMAPS_HOME/cells.csv
The plate as OME-Zarr with labels and feature tables, for napari, vizarr or Fractal: $TMAPS_HOME/ome-zarr/plate01.zarr
Downloaded through the server: $TMAPS_HOME/download/
The pipeline that found them: $TMAPS_HOME/experiments/experiment_$EXPERIMENT_ID/workflow/jterator/pipeline.yaml
EOT

VIEWER_URL="http://127.0.0.1:$PORT/viewer/$EXPERIMENT_ID"
if [ -t 0 ] && [ -t 1 ]; then
    cat <<EOT

The server keeps serving the demo experiment (API description: http://127.0.0.1:$PORT/api/openapi.json).
Try, in another shell:
    source .venv/bin/activate; export TM_PORT=$PORT TM_USER=demo TM_PASSWORD=demo
    tm_client workflow -e demo status
Press Ctrl-C to stop it.

Open the viewer: $VIEWER_URL
Log in as user demo, password demo.
EOT
    wait "$SERVER_PID"
else
    cat <<EOT

To browse the plate, start the server and open the viewer:
    TMAPS_HOME=$TMAPS_HOME .venv/bin/tm_server --port $PORT
Open the viewer: $VIEWER_URL
Log in as user demo, password demo.
EOT
fi
