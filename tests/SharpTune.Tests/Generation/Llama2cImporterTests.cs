using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Generation;
using SharpTune.IO;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Generation;

public class Llama2cImporterTests
{
    private static readonly string HfCopy = Path.Combine(RepoPaths.Models, "stories260K");
    private static readonly string Llama2cDir = Path.Combine(HfCopy, "llama2c");

    internal static string Import()
    {
        var output = RepoPaths.NewTempDirectory("llama2c-import");
        Llama2cImporter.Convert(Path.Combine(Llama2cDir, "stories260K.bin"), Path.Combine(Llama2cDir, "tok512.bin"), output);
        return output;
    }

    [Fact]
    public void ImportedWeightsEqualTheHuggingFaceCopy()
    {
        var output = Import();
        try
        {
            using var expected = SafeTensorsFile.Open(Path.Combine(HfCopy, "model.safetensors"));
            using var actual = SafeTensorsFile.Open(Path.Combine(output, "model.safetensors"));
            Assert.Equal(expected.Names.Order(), actual.Names.Order());
            foreach (var name in expected.Names)
            {
                using var scope = NewDisposeScope();
                var a = actual.Load(name);
                var e = expected.Load(name);
                Assert.Equal(e.shape, a.shape);
                Assert.True(a.eq(e).all().item<bool>(), $"{name} differs (max abs diff {(a - e).abs().max().item<float>()})");
            }
        }
        finally
        {
            Directory.Delete(output, true);
        }
    }

    [Fact]
    public void ImportedConfigAndTokenizerMatchTheHuggingFaceCopy()
    {
        var output = Import();
        try
        {
            var expectedConfig = ReadJson(HfCopy, "config.json");
            var actualConfig = ReadJson(output, "config.json");
            expectedConfig.Remove("transformers_version");
            Assert.True(JsonNode.DeepEquals(expectedConfig, actualConfig), $"config.json differs:\n{actualConfig}");

            var generation = ReadJson(output, "generation_config.json");
            var expectedGeneration = ReadJson(HfCopy, "generation_config.json");
            foreach (var key in new[] { "bos_token_id", "eos_token_id" })
                Assert.True(JsonNode.DeepEquals(expectedGeneration[key], generation[key]), key);

            Assert.True(JsonNode.DeepEquals(ReadJson(HfCopy, "tokenizer.json"), ReadJson(output, "tokenizer.json")), "tokenizer.json differs");
            Assert.True(JsonNode.DeepEquals(ReadJson(HfCopy, "tokenizer_config.json"), ReadJson(output, "tokenizer_config.json")), "tokenizer_config.json differs");
        }
        finally
        {
            Directory.Delete(output, true);
        }
    }

    [Fact]
    public void VocabularyDecodesAsLlama2c()
    {
        var vocabulary = Llama2cVocabulary.Load(Path.Combine(Llama2cDir, "tok512.bin"));
        Assert.Equal(512, vocabulary.Count);
        // BOS is printed as llama2.c stores it, the space opening the next piece is dropped, <0x0A> is a newline.
        Assert.Equal("\n<s>\nOnce upon a time\n", vocabulary.Decode([1, 403, 407, 261, 378, 13]));
    }

    [Fact]
    public void RejectsTruncatedCheckpoint()
    {
        var directory = RepoPaths.NewTempDirectory("llama2c-bad");
        try
        {
            var bytes = File.ReadAllBytes(Path.Combine(Llama2cDir, "stories260K.bin"));
            var truncated = Path.Combine(directory, "model.bin");
            File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
            var error = Assert.Throws<InvalidDataException>(() =>
                Llama2cImporter.Convert(truncated, Path.Combine(Llama2cDir, "tok512.bin"), Path.Combine(directory, "out")));
            Assert.Contains(truncated, error.Message);
            Assert.False(File.Exists(Path.Combine(directory, "out", "model.safetensors")));
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    private static JsonObject ReadJson(string directory, string file) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(directory, file)))!.AsObject();
}
