using System.Text.Json.Nodes;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Hardening;

/// <summary>Malformed safetensors and config.json files, loaded by <c>sharptune convert</c>.</summary>
public sealed class MalformedModelFileTests : MalformedInputSuite
{
    private static readonly string Fixture = RepoPaths.Fixture("models", "bert-seqcls");

    /// <summary>A model folder with the fixture's config and <paramref name="weights"/> as model.safetensors; convert it.</summary>
    private static Func<string, string, string[]> Weights(byte[] weights) => (folder, output) =>
    {
        var model = Path.Combine(folder, "model");
        Directory.CreateDirectory(model);
        File.Copy(Path.Combine(Fixture, "config.json"), Path.Combine(model, "config.json"));
        Write(model, "model.safetensors", weights);
        return ["convert", "--model", model, "--output", output];
    };

    /// <summary>The fixture's weights with config.json changed by <paramref name="edit"/> (or replaced by <paramref name="raw"/>).</summary>
    private static Func<string, string, string[]> Config(Action<JsonObject>? edit, string? raw = null) => (folder, output) =>
    {
        var model = Path.Combine(folder, "model");
        Directory.CreateDirectory(model);
        File.Copy(Path.Combine(Fixture, "model.safetensors"), Path.Combine(model, "model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture, "config.json")))!.AsObject();
        edit?.Invoke(config);
        Write(model, "config.json", raw ?? config.ToJsonString());
        return ["convert", "--model", model, "--output", output];
    };

    /// <summary>The fixture's config with <paramref name="index"/> as model.safetensors.index.json (and no single weights file).</summary>
    private static Func<string, string, string[]> Index(string index) => (folder, output) =>
    {
        var model = Path.Combine(folder, "model");
        Directory.CreateDirectory(model);
        File.Copy(Path.Combine(Fixture, "config.json"), Path.Combine(model, "config.json"));
        Write(model, "model.safetensors.index.json", index);
        return ["convert", "--model", model, "--output", output];
    };

    private const string Entry = "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]";

    public static readonly MalformedCase[] Cases =
    [
        new("safetensors-4-bytes", Weights([1, 2, 3, 4]), "model.safetensors", "not a safetensors file"),
        new("safetensors-huge-header-length", Weights(SafeTensors("{}", headerLength: 1L << 60)), "model.safetensors", "header length"),
        new("safetensors-truncated-header", Weights(SafeTensors("{}", headerLength: 4096)), "model.safetensors", "truncated"),
        new("safetensors-header-not-json", Weights(SafeTensors("{\"w\": [")), "model.safetensors", "not valid JSON"),
        new("safetensors-header-array", Weights(SafeTensors("[1, 2]")), "model.safetensors", "not a JSON object"),
        new("safetensors-size-overflow", Weights(SafeTensors("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387968],\"data_offsets\":[0,0]}}")),
            "model.safetensors", "tensor 'w'", "2^63 bytes"),
        new("safetensors-product-overflow", Weights(SafeTensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}")),
            "model.safetensors", "tensor 'w'", "2^63 bytes"),
        new("safetensors-duplicate-key", Weights(SafeTensors($"{{\"w\":{{{Entry}}},\"w\":{{{Entry}}}}}", 16)), "model.safetensors", "'w' twice"),
        new("safetensors-dtype-number", Weights(SafeTensors("{\"w\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}", 16)),
            "model.safetensors", "tensor 'w'", "dtype"),
        new("safetensors-unknown-dtype", Weights(SafeTensors("{\"w\":{\"dtype\":\"F9\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16)),
            "model.safetensors", "'w'", "unsupported dtype 'F9'"),
        new("safetensors-shape-string", Weights(SafeTensors("{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", 16)),
            "model.safetensors", "tensor 'w'", "shape"),
        new("safetensors-negative-dimension", Weights(SafeTensors("{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16)),
            "model.safetensors", "tensor 'w'", "dimension -4"),
        new("safetensors-offset-beyond-data", Weights(SafeTensors($"{{\"w\":{{{Entry}}}}}", 8)), "model.safetensors", "tensor 'w'", "outside the data section"),
        new("safetensors-offset-1e30", Weights(SafeTensors("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1e30]}}", 16)),
            "model.safetensors", "tensor 'w'", "1e30"),
        new("safetensors-size-mismatch", Weights(SafeTensors("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", 16)),
            "model.safetensors", "tensor 'w'", "needs 16 bytes"),
        new("safetensors-overlap", Weights(SafeTensors($"{{\"a\":{{{Entry}}},\"b\":{{{Entry}}}}}", 16)), "model.safetensors", "overlap"),
        new("safetensors-metadata-number", Weights(SafeTensors("{\"__metadata__\":{\"format\":1}}")), "model.safetensors", "__metadata__"),

        new("index-not-json", Index("{\"weight_map\": {"), "model.safetensors.index.json", "not a valid index"),
        new("index-shard-number", Index("{\"weight_map\": {\"w\": 5}}"), "model.safetensors.index.json", "no shard file named for 'w'"),
        new("index-shard-outside", Index("{\"weight_map\": {\"w\": \"../../config.json\"}}"), "model.safetensors.index.json", "not a file name"),
        new("index-shard-missing", Index("{\"weight_map\": {\"w\": \"model-00009.safetensors\"}}"), "model.safetensors.index.json", "missing"),

        new("config-million-layers", Config(c => c["num_hidden_layers"] = 1000000), "config.json", "num_hidden_layers", "1000000"),
        new("config-hidden-1e9", Config(c => c["hidden_size"] = JsonValue.Create(1e9)), "config.json", "hidden_size", "1000000000"),
        new("config-hidden-negative", Config(c => c["hidden_size"] = -64), "config.json", "hidden_size", "-64"),
        new("config-vocab-zero", Config(c => c["vocab_size"] = 0), "config.json", "vocab_size", "is 0"),
        new("config-vocab-negative", Config(c => c["vocab_size"] = -5), "config.json", "vocab_size", "-5"),
        new("config-zero-heads", Config(c => c["num_attention_heads"] = 0), "config.json", "num_attention_heads", "is 0"),
        new("config-heads-do-not-divide", Config(c => c["num_attention_heads"] = 5), "config.json", "not divisible"),
        new("config-hidden-string", Config(c => c["hidden_size"] = "big"), "config.json", "hidden_size", "whole number"),
        new("config-hidden-fraction", Config(c => c["hidden_size"] = 64.5), "config.json", "hidden_size", "whole number"),
        new("config-too-many-parameters", Config(c =>
        {
            c["hidden_size"] = 131072;
            c["num_attention_heads"] = 1024;
            c["num_hidden_layers"] = 1024;
            c["intermediate_size"] = 524288;
        }), "config.json", "parameters"),
        new("config-not-json", Config(null, "{\"hidden_size\": 64,"), "config.json", "not valid JSON"),
        new("config-array", Config(null, "[64, 2]"), "config.json", "not a JSON object"),
    ];

    public static TheoryData<string> CaseNames => Names(Cases);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void EndsWithOneClearLine(string name) => Check(Cases.Single(c => c.Name == name));
}
