using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Quantization;
using SharpTune.Tests.Support;
using static SharpTune.Tests.Models.DecoderTestSupport;
using static TorchSharp.torch;

namespace SharpTune.Tests.Peft;

/// <summary>sharptune merge, forward --adapter and quantize, run as a user would.</summary>
public class PeftCliTests
{
    private static string Lora(params string[] parts) => RepoPaths.Fixture(["lora", "llama", .. parts]);

    [Fact]
    public void MergeWritesAModelWithPeftsMergedLogits()
    {
        var output = Path.Combine(RepoPaths.NewTempDirectory(), "merged");
        try
        {
            var result = CliRunner.Run("merge", "--model", Lora("base"), "--adapter", Lora("adapter"), "--output", output);
            Assert.True(result.ExitCode == 0, result.All);
            using var scope = NewDisposeScope();
            var reference = LoadReference(Lora("reference.safetensors"));
            using var model = LoadCausalLM(output);
            using var logits = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"] });
            Assert.True(MaxAbsError(logits.Logits!, reference["logits_merged"]) <= 1e-4);
            Assert.True(File.Exists(Path.Combine(output, "generation_config.json")));

            var again = CliRunner.Run("merge", "--model", Lora("base"), "--adapter", Lora("adapter"), "--output", output);
            Assert.Equal(2, again.ExitCode);
            var missing = CliRunner.Run("merge", "--model", Lora("base"), "--adapter", Lora("nowhere"), "--output", output + "2");
            Assert.Equal(2, missing.ExitCode);
            Assert.Contains("nowhere", missing.All);
            Assert.False(Directory.Exists(output + "2"));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(output)!, true);
        }
    }

    [Fact]
    public void ForwardAppliesAnAdapter()
    {
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var scope = NewDisposeScope();
            var reference = LoadReference(Lora("reference.safetensors"));
            var input = Path.Combine(dir, "input.safetensors");
            SafeTensorsWriter.Save(input, [new("input_ids", reference["input_ids"]), new("attention_mask", reference["attention_mask"])]);
            var output = Path.Combine(dir, "out.safetensors");
            var result = CliRunner.Run("forward", "--model", Lora("base"), "--adapter", Lora("adapter"), "--input", input, "--output", output);
            Assert.True(result.ExitCode == 0, result.All);
            using var file = SafeTensorsFile.Open(output);
            using var logits = file.Load("logits");
            Assert.True(MaxAbsError(logits, reference["logits_with_adapter"]) <= 1e-4);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void QuantizeSavesACheckpointAutoModelLoads()
    {
        var output = Path.Combine(RepoPaths.NewTempDirectory(), "nf4");
        try
        {
            var stories = Path.Combine(RepoPaths.Models, "stories260K");
            var result = CliRunner.Run("quantize", "--model", stories, "--output", output, "--bits", "4", "--quant-type", "nf4",
                "--double-quant", "--compute-dtype", "bfloat16");
            Assert.True(result.ExitCode == 0, result.All);
            Assert.Contains("0.5169", result.StdOut); // bytes per quantized parameter
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["quantization_config"]!;
            Assert.Equal("bfloat16", config["bnb_4bit_compute_dtype"]!.GetValue<string>());
            Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
            Assert.True(new FileInfo(Path.Combine(output, "model.safetensors")).Length < 0.45 * new FileInfo(Path.Combine(stories, "model.safetensors")).Length);
            using var model = AutoModel.FromPretrained(output);
            Assert.Equal(35, Quantizer.Footprint(model).Layers);

            var bad = CliRunner.Run("quantize", "--model", stories, "--output", output + "3", "--bits", "3");
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains("bits", bad.All);
            Assert.False(Directory.Exists(output + "3"));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(output)!, true);
        }
    }
}
