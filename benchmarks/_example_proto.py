"""``tf.train.Example`` message classes for Google's ``protobuf`` package, without TensorFlow.

Built at run time from a descriptor written here from the published ``.proto`` schema (field
names and numbers), so that the benchmark can measure protobuf's own parser (upb) on Examples.
Returns None when ``protobuf`` is not installed.
"""

from __future__ import annotations

from typing import Any


def example_classes() -> dict[str, Any] | None:
    """``{"Example": cls, "SequenceExample": cls, ...}`` or None without protobuf."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        return None
    fdp = descriptor_pb2.FileDescriptorProto(
        name="aiopipe_bench/example.proto", package="aiopipe_bench", syntax="proto3"
    )
    label = descriptor_pb2.FieldDescriptorProto
    optional, repeated = label.LABEL_OPTIONAL, label.LABEL_REPEATED

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> Any:
        msg = fdp.message_type.add(name=name)
        for fname, number, lab, ftype, type_name in fields:
            f = msg.field.add(name=fname, number=number, label=lab, type=ftype)
            if type_name:
                f.type_name = f".aiopipe_bench.{type_name}"
        return msg

    t = label
    message("BytesList", ("value", 1, repeated, t.TYPE_BYTES, ""))
    message("FloatList", ("value", 1, repeated, t.TYPE_FLOAT, ""))
    message("Int64List", ("value", 1, repeated, t.TYPE_INT64, ""))
    feature = message(
        "Feature",
        ("bytes_list", 1, optional, t.TYPE_MESSAGE, "BytesList"),
        ("float_list", 2, optional, t.TYPE_MESSAGE, "FloatList"),
        ("int64_list", 3, optional, t.TYPE_MESSAGE, "Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for f in feature.field:
        f.oneof_index = 0
    for outer, value_type, field_name in (
        ("Features", "Feature", "feature"),
        ("FeatureLists", "FeatureList", "feature_list"),
    ):
        if outer == "FeatureLists":
            message("FeatureList", ("feature", 1, repeated, t.TYPE_MESSAGE, "Feature"))
        msg = message(outer, (field_name, 1, repeated, t.TYPE_MESSAGE, f"{outer}.Entry"))
        entry = msg.nested_type.add(name="Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, label=optional, type=t.TYPE_STRING)
        entry.field.add(
            name="value",
            number=2,
            label=optional,
            type=t.TYPE_MESSAGE,
            type_name=f".aiopipe_bench.{value_type}",
        )
    message("Example", ("features", 1, optional, t.TYPE_MESSAGE, "Features"))
    message(
        "SequenceExample",
        ("context", 1, optional, t.TYPE_MESSAGE, "Features"),
        ("feature_lists", 2, optional, t.TYPE_MESSAGE, "FeatureLists"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    names = ("Example", "SequenceExample", "Features", "Feature")
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"aiopipe_bench.{n}"))
        for n in names
    }
