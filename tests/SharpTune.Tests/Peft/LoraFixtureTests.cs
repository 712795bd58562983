using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tests.Support;
using Xunit.Abstractions;
using static SharpTune.Tests.Models.DecoderTestSupport;
using static TorchSharp.torch;

namespace SharpTune.Tests.Peft;

/// <summary>peft's own adapters (tests/fixtures/lora) against peft's logits, and SharpTune's saved adapters against
/// peft's files.</summary>
public class LoraFixtureTests(ITestOutputHelper log)
{
    public static TheoryData<string> Fixtures => ["llama", "phi"];

    private static string Dir(string fixture, string part = "") => RepoPaths.Fixture("lora", fixture, part);

    private static Tensor Logits(PreTrainedModel model, Dictionary<string, Tensor> reference)
    {
        using var output = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"] });
        return output.Logits!.clone();
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void AdapterAndMergedLogitsMatchPeft(string fixture)
    {
        using var scope = NewDisposeScope();
        var reference = LoadReference(Dir(fixture, "reference.safetensors"));
        using var model = LoadCausalLM(Dir(fixture, "base"));
        var baseLogits = Logits(model, reference);
        var peft = PeftModel.FromPretrained(model, Dir(fixture, "adapter"));
        var withAdapter = MaxAbsError(Logits(model, reference), reference["logits_with_adapter"]);
        using (peft.DisableAdapter())
            Assert.True(MaxAbsError(Logits(model, reference), baseLogits) == 0, "disabled adapters must give the base logits");

        peft.MergeAdapter();
        var merged = MaxAbsError(Logits(model, reference), reference["logits_merged"]);
        peft.UnmergeAdapter();
        var unmerged = MaxAbsError(Logits(model, reference), reference["logits_with_adapter"]);

        var unloaded = peft.MergeAndUnload();
        var mergedAndUnloaded = MaxAbsError(Logits(unloaded, reference), reference["logits_merged"]);
        Assert.DoesNotContain(unloaded.named_parameters(), p => p.name.Contains("lora_") || p.name.Contains("base_layer"));
        log.WriteLine($"{fixture}: with adapter {withAdapter:E2}, merged {merged:E2}, unmerged {unmerged:E2}, merge_and_unload {mergedAndUnloaded:E2}");
        Assert.True(withAdapter <= 1e-4, $"with adapter: {withAdapter}");
        Assert.True(merged <= 1e-4, $"merged: {merged}");
        Assert.True(unmerged <= 1e-4, $"unmerged: {unmerged}");
        Assert.True(mergedAndUnloaded <= 1e-4, $"merge_and_unload: {mergedAndUnloaded}");
        // The adapter really changes the model (the test could not pass with the adapter ignored).
        Assert.True(MaxAbsError(baseLogits, reference["logits_with_adapter"]) > 1e-3);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void SavedAdapterHasPeftsKeysConfigFieldsAndTensors(string fixture)
    {
        var output = RepoPaths.NewTempDirectory();
        try
        {
            using var scope = NewDisposeScope();
            using var model = LoadCausalLM(Dir(fixture, "base"));
            var peft = PeftModel.FromPretrained(model, Dir(fixture, "adapter"));
            peft.SavePretrained(output);

            using var theirs = SafeTensorsFile.Open(Path.Combine(Dir(fixture, "adapter"), PeftModel.WeightsFileName));
            using var ours = SafeTensorsFile.Open(Path.Combine(output, PeftModel.WeightsFileName));
            Assert.Equal(theirs.Names.Order(StringComparer.Ordinal), ours.Names.Order(StringComparer.Ordinal));
            Assert.Equal(theirs.Metadata, ours.Metadata);
            foreach (var name in theirs.Names)
            {
                using var expected = theirs.Load(name);
                using var actual = ours.Load(name);
                Assert.True(Quantization.BlockwiseQuantizationTests.Same(expected, actual), name);
            }

            var theirConfig = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Dir(fixture, "adapter"), LoraConfig.FileName)))!;
            var ourConfig = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(output, LoraConfig.FileName)))!;
            Assert.Equal(theirConfig.Select(p => p.Key), ourConfig.Select(p => p.Key));
            foreach (var (key, value) in theirConfig)
                if (key != "inference_mode")
                    Assert.True(JsonNode.DeepEquals(value, ourConfig[key]) || Numeric(value) == Numeric(ourConfig[key]), $"{key}: {value?.ToJsonString()} vs {ourConfig[key]?.ToJsonString()}");
        }
        finally
        {
            Directory.Delete(output, true);
        }
    }

    private static double? Numeric(JsonNode? node) => node is JsonValue value && value.TryGetValue<double>(out var d) ? d : null;
}
