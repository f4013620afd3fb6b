"""Stage-1 (alignment) builders: caption pairs from the public corpora's own annotation formats.

Every row is one media item and its caption: the user turn holds only the media item (no instruction text), the
assistant turn the caption, `answer` the caption as written in the row. Captions go through the context's
`CaptionLimit` (32 whitespace words by default, or 32 tokenizer tokens with a tokenizer).

Formats (`media_root` is the folder media paths are relative to):

- `coco`: COCO captions JSON (`captions_train2014.json`: `images` [{id, file_name}], `annotations`
  [{id, image_id, caption}]); one row per caption. Image = `media_root/file_name`, else
  `media_root/<train2014|val2014|...>/file_name` (the split read from the file name).
- `cc3m` (also LAION): TSV / CSV / Parquet with a caption column (`caption`, `TEXT`, `text`) and a local path
  column (`image`, `image_path`, `filepath`, `file_name`, `path`, `file`), or a URL column (`url`, `URL`,
  `image_url`) whose last path component is the file name under `media_root`. A TSV whose first line names no
  known column is CC3M's own headerless `caption<TAB>url`. Records are named by their 0-based data line.
- `webdataset`: tar shards (a file, or a folder of `*.tar`): members `KEY.jpg|jpeg|png|webp` and `KEY.txt`
  (the caption) or `KEY.json` (its `caption` / `text` field). Images are extracted to `OUT/media/<shard>/`.
- `webvid`: WebVid CSV (`videoid,name,page_dir,duration,contentUrl`); video = `media_root/page_dir/videoid.mp4`,
  else `media_root/videoid.mp4`; caption = `name`.
- `wavcaps`: WavCaps JSON (`{"data": [{"id", "caption", ...}]}`, one file per subset); audio =
  `media_root/<audio or file_name field>`, else `media_root/<id>` if it has an extension, else
  `media_root/<id>.{flac,wav,mp3,ogg}`.
"""

from __future__ import annotations

import csv
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .common import (
    BAD_RECORD, CAPTION_TOO_LONG, EMPTY_CAPTION, MISSING_MEDIA, NO_CAPTION, NO_MEDIA, UNKNOWN_IMAGE, BuildContext,
    Skip, assistant_turn, clean_text, iter_sources, media_turn, read_json,
)

STAGE1_TASKS = {"image": "stage1-image", "video": "stage1-video", "audio": "stage1-audio"}
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
AUDIO_EXTENSIONS = ("flac", "wav", "mp3", "ogg")


def caption_row(ctx: BuildContext, *, record: str, source: str, modality: str, media: Path, caption,
                source_file: str) -> dict | Skip:
    """One stage-1 row, or a Skip for an empty or too long caption."""
    caption = clean_text(caption)
    if not caption:
        return Skip(record, EMPTY_CAPTION, "", source_file)
    text, detail = ctx.caption_limit.apply(caption)
    if text is None:
        return Skip(record, CAPTION_TOO_LONG, detail, source_file)
    columns = {"image": "images", "video": "videos", "audio": "audios"}
    return ctx.row(
        id=f"{source}-{record}", stage=1, task=STAGE1_TASKS[modality], modality=modality, source=source,
        answer=text, messages=[media_turn([modality]), assistant_turn(text)], **{columns[modality]: [media]},
    )


# ---------------------------------------------------------------------------------------------------------------


def coco_split_folder(file_name: str) -> str | None:
    match = re.match(r"COCO_([a-z]+\d{4})_", Path(file_name).name)
    return match.group(1) if match else None


def coco_image_index(data: dict) -> dict:
    return {image["id"]: image for image in data.get("images", [])}


def coco_image_path(ctx: BuildContext, image: dict) -> Path | None:
    name = image.get("file_name", "")
    folder = coco_split_folder(name)
    return ctx.find_media(name, f"{folder}/{name}" if folder else None)


def coco_caption_records(sources, ctx: BuildContext, patterns: list[str]) -> Iterator:
    """Each COCO caption annotation as (record, image path, caption, source file), or a `Skip` saying why not."""
    for source_file in iter_sources(sources, patterns):
        data = read_json(source_file)
        images = coco_image_index(data)
        found: dict = {}
        for annotation in data.get("annotations", []):
            record = str(annotation.get("id", annotation.get("image_id")))
            image = images.get(annotation.get("image_id"))
            if image is None:
                yield Skip(record, UNKNOWN_IMAGE, f"image_id {annotation.get('image_id')}", str(source_file))
                continue
            if image["id"] not in found:
                found[image["id"]] = coco_image_path(ctx, image)
            path = found[image["id"]]
            if path is None:
                yield Skip(record, MISSING_MEDIA, image.get("file_name", ""), str(source_file))
                continue
            yield record, path, annotation.get("caption"), str(source_file)


def build_coco(sources, ctx: BuildContext) -> Iterator:
    for item in coco_caption_records(sources, ctx, ["captions_*.json", "*.json"]):
        if isinstance(item, Skip):
            yield item
            continue
        record, path, caption, source_file = item
        yield caption_row(ctx, record=record, source="coco", modality="image", media=path,
                          caption=caption, source_file=source_file)


# ---------------------------------------------------------------------------------------------------------------

CAPTION_COLUMNS = ("caption", "TEXT", "text", "name", "title")
PATH_COLUMNS = ("image", "image_path", "filepath", "file_name", "path", "file", "filename")
URL_COLUMNS = ("url", "URL", "image_url", "contentUrl")


def _pick(columns, options):
    for option in options:
        if option in columns:
            return option
    return None


def _table_records(path: Path) -> Iterator[dict]:
    """Records of a TSV / CSV / Parquet caption table as dicts (headerless CC3M TSV -> caption, url)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=10_000):
            yield from batch.to_pylist()
        return
    delimiter = "\t" if path.suffix in (".tsv", ".txt") else ","
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else 0)
        first = next(reader, None)
        if first is None:
            return
        known = set(CAPTION_COLUMNS + PATH_COLUMNS + URL_COLUMNS)
        if any(name in known for name in first):
            header = first
        else:  # CC3M's own Train_GCC-training.tsv: caption \t url, no header
            header = ["caption", "url"][: len(first)] + [f"column{i}" for i in range(2, len(first))]
            yield dict(zip(header, first))
        for values in reader:
            yield dict(zip(header, values))


def build_caption_table(sources, ctx: BuildContext) -> Iterator:
    for source_file in iter_sources(sources, ["*.tsv", "*.csv", "*.parquet"]):
        caption_column = path_column = url_column = None
        for index, record in enumerate(_table_records(source_file)):
            if caption_column is None:
                caption_column = _pick(record, CAPTION_COLUMNS)
                path_column = _pick(record, PATH_COLUMNS)
                url_column = _pick(record, URL_COLUMNS)
                if caption_column is None or (path_column is None and url_column is None):
                    raise ValueError(
                        f"{source_file}: no caption column ({', '.join(CAPTION_COLUMNS)}) or no image column "
                        f"(paths: {', '.join(PATH_COLUMNS)}; URLs: {', '.join(URL_COLUMNS)}); "
                        f"columns: {', '.join(record)}."
                    )
            name = str(index)
            candidates = []
            if path_column and record.get(path_column):
                candidates.append(str(record[path_column]))
            if url_column and record.get(url_column):
                candidates.append(PurePosixPath(str(record[url_column]).split("?")[0]).name)
            if not candidates:
                yield Skip(name, BAD_RECORD, "no image path or URL", str(source_file))
                continue
            path = ctx.find_media(*candidates)
            if path is None:
                yield Skip(name, MISSING_MEDIA, candidates[0], str(source_file))
                continue
            yield caption_row(ctx, record=f"{source_file.stem}-{name}", source="cc3m", modality="image", media=path,
                              caption=record.get(caption_column), source_file=str(source_file))


# ---------------------------------------------------------------------------------------------------------------


def _webdataset_key(member_name: str) -> tuple[str, str]:
    """WebDataset's split of a member name: key = path up to the first dot of the base name, extension = rest."""
    directory, _, base = member_name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def _webdataset_samples(tar: tarfile.TarFile) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for consecutive members sharing a key, as WebDataset groups them."""
    key, files = None, {}
    for member in tar:
        if not member.isfile():
            continue
        member_key, extension = _webdataset_key(member.name)
        if member_key != key and key is not None:
            yield key, files
            files = {}
        key = member_key
        files[extension] = tar.extractfile(member).read()
    if key is not None:
        yield key, files


def _webdataset_caption(files: dict[str, bytes]) -> str | None:
    if "txt" in files:
        return files["txt"].decode("utf-8", errors="replace")
    if "json" in files:
        try:
            meta = json.loads(files["json"])
        except ValueError:
            return None
        for name in ("caption", "text", "TEXT"):
            if isinstance(meta, dict) and meta.get(name) is not None:
                return str(meta[name])
    return None


def _check_member_key(shard: Path, key: str) -> None:
    """Member names become paths under the output folder: an absolute one or one with `..` would write elsewhere."""
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"{shard}: member {key!r} is an absolute path or climbs out with '..'; refusing to extract it (the archive "
            "is broken or hostile)."
        )


def _write_new(target: Path, data: bytes, shard: Path) -> None:
    """Extract `data` to `target`, which may already hold the same bytes (a rebuild), never other ones."""
    if target.exists():
        if target.read_bytes() != data:
            raise ValueError(f"{shard}: {target} already exists with other content; refusing to overwrite it.")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def build_webdataset(sources, ctx: BuildContext) -> Iterator:
    for shard in iter_sources(sources, ["*.tar"]):
        folder = ctx.extract_dir / shard.name.removesuffix(".tar")
        with tarfile.open(shard, "r|*") as tar:
            for key, files in _webdataset_samples(tar):
                _check_member_key(shard, key)
                record = f"{shard.name}:{key}"
                extension = next((ext for ext in IMAGE_EXTENSIONS if ext in files), None)
                if extension is None:
                    yield Skip(record, NO_MEDIA, f"members: {', '.join(sorted(files))}", str(shard))
                    continue
                caption = _webdataset_caption(files)
                if caption is None:
                    yield Skip(record, NO_CAPTION, f"members: {', '.join(sorted(files))}", str(shard))
                    continue
                result = caption_row(ctx, record=record, source="webdataset", modality="image",
                                     media=folder / f"{key}.{extension}", caption=caption, source_file=str(shard))
                if not isinstance(result, Skip):  # write the image only for rows that use it
                    _write_new(folder / f"{key}.{extension}", files[extension], shard)
                yield result


# ---------------------------------------------------------------------------------------------------------------


def build_webvid(sources, ctx: BuildContext) -> Iterator:
    for source_file in iter_sources(sources, ["*.csv"]):
        with open(source_file, encoding="utf-8", newline="") as handle:
            for line, record in enumerate(csv.DictReader(handle), start=2):
                videoid = (record.get("videoid") or "").strip()
                if not videoid:
                    yield Skip(f"line {line}", BAD_RECORD, "no videoid", str(source_file))
                    continue
                page_dir = (record.get("page_dir") or "").strip()
                path = ctx.find_media(f"{page_dir}/{videoid}.mp4" if page_dir else None, f"{videoid}.mp4")
                if path is None:
                    yield Skip(videoid, MISSING_MEDIA, f"{page_dir}/{videoid}.mp4", str(source_file))
                    continue
                yield caption_row(ctx, record=videoid, source="webvid", modality="video", media=path,
                                  caption=record.get("name"), source_file=str(source_file))


# ---------------------------------------------------------------------------------------------------------------


def wavcaps_audio_candidates(entry: dict) -> list[str]:
    candidates = [str(entry[key]) for key in ("audio", "file_name", "wav_path", "path") if entry.get(key)]
    identifier = str(entry.get("id", "")).strip()
    if identifier:
        if Path(identifier).suffix.lower().lstrip(".") in AUDIO_EXTENSIONS:
            candidates.append(identifier)
            identifier = Path(identifier).stem
        candidates += [f"{identifier}.{ext}" for ext in AUDIO_EXTENSIONS]
    return candidates


def build_wavcaps(sources, ctx: BuildContext) -> Iterator:
    for source_file in iter_sources(sources, ["*.json"]):
        data = read_json(source_file)
        entries = data.get("data", []) if isinstance(data, dict) else data
        for index, entry in enumerate(entries):
            record = str(entry.get("id", f"#{index}"))
            candidates = wavcaps_audio_candidates(entry)
            path = ctx.find_media(*candidates)
            if path is None:
                yield Skip(record, MISSING_MEDIA, candidates[0] if candidates else "no id", str(source_file))
                continue
            yield caption_row(ctx, record=record, source="wavcaps", modality="audio", media=path,
                              caption=entry.get("caption"), source_file=str(source_file))


STAGE1_BUILDERS = {
    "coco": build_coco,
    "cc3m": build_caption_table,
    "laion": build_caption_table,
    "webdataset": build_webdataset,
    "webvid": build_webvid,
    "wavcaps": build_wavcaps,
}
